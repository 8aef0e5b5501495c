/**
 * Group 4 — tool cold start: wall time of one `eve_tools_tpm2_sign` process (the bundled tool
 * → the service over a unix socket → swtpm) against stock tpm2-tools signing with the same
 * persistent key on the same swtpm, each run a fresh process, runs interleaved.
 *
 * Both reach the same swtpm through a command multiplexer (swtpm serves one connection at a
 * time and the service keeps its own open): tpm2-tools use tpm2-tss's swtpm TCTI
 * (`swtpm:path=…`, a unix socket, no Python bridge — the bridge costs ~0.4 s per process) and
 * the service uses our swtpm socket transport, so both pay the same hop. The service keeps
 * keys in the TPM (`--key-store tpm`), so tpm2-tools can address the key by its handle.
 *
 * Fair pairs: `tpm2_sign -c H -g sha256 -f plain MSG` hashes in the TPM for the ticket and
 * signs — the same TPM work as our tool — in one process; `tpm2_hash` + `tpm2_sign -d -t` is
 * the two-process recipe. `node -e 0` and `eve_tools_tpm2_sign --help` show Node's floor.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ms, x, type Ctx, type Group } from '../context.js';
import { distBin, startService, startTwinSwtpms } from '../env.js';
import { tempDir } from '../lifecycle.js';
import { TpmMux } from '../mux.js';
import { interleave, ratio, summarize, type Summary } from '../stats.js';

export interface ProcResult {
  ms: number;
  status: number | null;
  stderr: string;
}

/** Runs a process to completion without blocking the event loop (the multiplexer lives here). */
export function runProcess(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(argv[0]!, argv.slice(1), { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.setEncoding('utf8');
    c.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    c.once('error', reject);
    c.once('close', (status) => resolve({ ms: performance.now() - t0, status, stderr }));
  });
}

async function must(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<number> {
  const r = await runProcess(argv, opts);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.ms;
}

export interface ToolBed {
  dir: string;
  handle: string;
  eveEnv: NodeJS.ProcessEnv;
  tssEnv: NodeJS.ProcessEnv;
  signTool: string;
  servicePid: () => number;
}

/** swtpm + multiplexer + service (tpm key store) + one tenant with a persistent RSA AK. */
export async function toolBed(ctx: Ctx): Promise<ToolBed> {
  const signTool = distBin(ctx, 'eve_tools_tpm2_sign');
  const [sw] = await startTwinSwtpms(1);
  const dir = await tempDir('bench-tools-');
  const mux = new TpmMux(sw!.sockPath, join(dir, 'mux.sock'), sw!.inst.ctrlPath);
  await mux.listen();
  const svc = await startService(ctx, { tpm: `swtpm:unix:${mux.path}`, tenants: 1, keyStore: 'tpm' });
  const key = await svc.client(0).createKey({ type: 'rsa' });
  writeFileSync(join(dir, 'message.txt'), 'a message of 32 bytes, to sign.\n');
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ secret: svc.secrets[0] }), { mode: 0o600 });
  const base = { ...process.env };
  delete base.EVE_TOOLS_SECRET;
  return {
    dir,
    handle: key.handle,
    eveEnv: { ...base, EVE_TOOLS_SERVICE: svc.address, EVE_TOOLS_CONFIG: config },
    tssEnv: { ...base, TPM2TOOLS_TCTI: `swtpm:path=${mux.path}` },
    signTool,
    servicePid: () => svc.pid(),
  };
}

export const toolsGroup: Group = {
  id: 4,
  title: 'Tool cold start: eve_tools_tpm2_sign vs tpm2-tools (same key, same swtpm)',
  async run(ctx: Ctx) {
    const n = ctx.smoke ? 3 : 40;
    const bed = await toolBed(ctx);
    const { dir, handle } = bed;
    const cmds = {
      eve: [process.execPath, bed.signTool, '-k', handle, '-m', 'message.txt', '-g', '0x00B', '-s', 'eve.sig'],
      tpm2_sign: ['tpm2_sign', '-c', handle, '-g', 'sha256', '-f', 'plain', '-o', 'tss.sig', 'message.txt'],
      hash_sign: ['sh', '-c', `tpm2_hash -C o -g sha256 -o dgst -t ticket message.txt && tpm2_sign -c ${handle} -g sha256 -d dgst -t ticket -f plain -o tss2.sig`],
      node_floor: [process.execPath, '-e', '0'],
      eve_help: [process.execPath, bed.signTool, '--help'],
    } as const;
    type K = keyof typeof cmds;
    const envOf = (k: K): NodeJS.ProcessEnv => (k === 'eve' || k === 'eve_help' || k === 'node_floor' ? bed.eveEnv : bed.tssEnv);
    // Correctness first: every signature verifies with openssl against the key's PEM.
    for (const k of ['eve', 'tpm2_sign', 'hash_sign'] as const) await must([...cmds[k]], { env: envOf(k), cwd: dir });
    await must(['tpm2_readpublic', '-c', handle, '-f', 'pem', '-o', 'ak.pem'], { env: bed.tssEnv, cwd: dir });
    for (const sig of ['eve.sig', 'tss.sig', 'tss2.sig']) await must(['openssl', 'dgst', '-sha256', '-verify', 'ak.pem', '-signature', sig, 'message.txt'], { cwd: dir });

    ctx.log(`tools: ${n} runs of each, interleaved`);
    const keys: K[] = ['eve', 'tpm2_sign', 'hash_sign', 'node_floor', 'eve_help'];
    const samples = await interleave(keys, n, async (k) => {
      const r = await runProcess([...cmds[k]], { env: envOf(k), cwd: dir });
      if (r.status !== 0) throw new Error(`${cmds[k].join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
      return r.ms;
    });
    const s = Object.fromEntries(keys.map((k) => [k, summarize(samples[k])])) as Record<K, Summary>;
    const row = (label: string, k: K, vs: K | undefined): (string | number)[] => [
      label,
      ms(s[k].p50),
      ms(s[k].p99),
      vs ? x(ratio(s[k].p50, s[vs].p50), 2) : '',
    ];
    return {
      tables: [
        {
          columns: ['process', 'p50 ms', 'p99 ms', 'p50 ÷ tpm2_sign'],
          rows: [
            row('eve_tools_tpm2_sign -k H -m MSG -g 0x00B -s SIG', 'eve', 'tpm2_sign'),
            row('tpm2_sign -c H -g sha256 -f plain MSG (hash+sign, 1 process)', 'tpm2_sign', 'tpm2_sign'),
            row('tpm2_hash … && tpm2_sign -d -t … (2 processes)', 'hash_sign', 'tpm2_sign'),
            row('node -e 0 (Node start-up floor)', 'node_floor', 'tpm2_sign'),
            row('eve_tools_tpm2_sign --help (start-up + bundle load)', 'eve_help', 'tpm2_sign'),
          ],
        },
      ],
      notes: [
        `${n} runs of each, interleaved; every run is a fresh process. All signatures were verified with openssl dgst -verify first. tpm2-tools reach swtpm through tpm2-tss's swtpm TCTI (unix socket); the service through our socket transport; both through the same multiplexer.`,
        `Limit: Node's start-up. Of the tool's ${ms(s.eve.p50)} ms, ${ms(s.node_floor.p50)} ms is Node starting with nothing to do and ${ms(s.eve_help.p50 - s.node_floor.p50)} ms loading the bundled tool; the rest (${ms(s.eve.p50 - s.eve_help.p50)} ms) is the requests to the service and its TPM work. tpm2-tools are C programs: their start-up is a few ms.`,
      ],
      data: { n, samples: s },
    };
  },
};
