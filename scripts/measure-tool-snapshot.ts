/**
 * Issue 13, P4: does a V8 startup snapshot of the tools bundle cut a tool's wall time?
 * Run by scripts/measure-tool-snapshot.mjs (which bundles this file and the snapshot entry).
 * Interleaved fresh processes, p50 of N each: `node -e 0`, `eve-tools.cjs sign --help`, a real
 * sign against the service on swtpm (group 4's bed), the same two from a snapshot blob (_snap)
 * and from the snapshot's entry run as a plain script (_lazy: node:http, node:net and
 * node:child_process loaded on first use, no snapshot); then the same on Debian's Node 18 when
 * asked (--node18). Nothing here is a test.
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import type { Ctx } from '../bench/src/context.js';
import { distBin } from '../bench/src/env.js';
import { runProcess, toolBed } from '../bench/src/groups/tools.js';
import { cleanupAll } from '../bench/src/lifecycle.js';
import { interleave, summarize } from '../bench/src/stats.js';
import { debianNode18 } from '../test/helpers/debian-node18.js';

export interface Opts {
  root: string;
  entry: string;
  /** An entry that does nothing: the floor of any user snapshot. */
  empty: string;
  n: number;
  node18: boolean;
}

type Argv = [string, string[]];

function build(node: Argv[0], wrap: (args: string[]) => Argv, entry: string, blob: string, env: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const [cmd, args] = wrap(['--snapshot-blob', blob, '--build-snapshot', entry]);
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  if (r.status !== 0 || r.stderr.trim()) throw new Error(`${node}: --build-snapshot failed (${r.status}): ${r.stderr.trim()}`);
  return performance.now() - t0;
}

async function measure(label: string, cmds: Record<string, Argv>, env: NodeJS.ProcessEnv, cwd: string, n: number): Promise<void> {
  // Every variant once, checked: exit 0; anything on stderr (a snapshot warning) is shown.
  for (const [k, [c, a]] of Object.entries(cmds)) {
    const r = await runProcess([c, ...a], { env, cwd });
    if (r.status !== 0) throw new Error(`${k}: exit ${r.status}: ${r.stderr.trim()}`);
    if (r.stderr.trim()) console.log(`${label}, ${k} writes to stderr: ${r.stderr.trim().split('\n')[0]}`);
  }
  const la0 = loadavg()[0]!.toFixed(2);
  const keys = Object.keys(cmds);
  const samples = await interleave(keys, n, async (k) => {
    const [c, a] = cmds[k]!;
    const r = await runProcess([c, ...a], { env, cwd });
    if (r.status !== 0) throw new Error(`${k}: exit ${r.status}: ${r.stderr.trim()}`);
    return r.ms;
  });
  const la1 = loadavg()[0]!.toFixed(2);
  const floor = summarize(samples.floor!).p50;
  console.log(`\n${label}: ${n} runs of each, interleaved; load average ${la0} → ${la1}`);
  console.log('variant'.padEnd(12), 'p50 ms'.padStart(8), 'p90 ms'.padStart(8), '÷ node -e 0'.padStart(12));
  for (const k of keys) {
    const s = summarize(samples[k]!);
    // *_snap, *_lazy: the change against the bundle as the wrappers run it.
    const base = /^(help|sign)_(snap|lazy)$/.exec(k)?.[1];
    const plain = base ? summarize(samples[base]!).p50 : undefined;
    const change = plain ? `  ${(((s.p50 - plain) / plain) * 100).toFixed(1)}% vs ${base}` : '';
    console.log(k.padEnd(12), s.p50.toFixed(1).padStart(8), s.p90.toFixed(1).padStart(8), (s.p50 / floor).toFixed(3).padStart(12) + change);
  }
}

/** Whether this node has its own start-up snapshot built in (Debian's 18 has none). */
function embeddedSnapshot([cmd, args]: Argv, env: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  return r.stdout.trim();
}
const SNAPSHOT_PROBE = ['-p', 'const v = process.config.variables; `embedded snapshot ${v.node_use_node_snapshot}, code cache ${v.node_use_node_code_cache}`'];

export async function run(o: Opts): Promise<void> {
  const ctx: Ctx = { root: o.root, smoke: false, log: (m) => process.stderr.write(`${m}\n`) };
  try {
    const bed = await toolBed(ctx);
    const tools = distBin(ctx, 'eve-tools');
    const sign = ['sign', '-k', bed.handle, '-m', 'message.txt', '-g', '0x00B', '-s', 'eve.sig'];
    const node = process.execPath;
    const blob = join(bed.dir, 'tools-20.blob');
    const direct = (args: string[]): Argv => [node, args];
    const buildMs = build(node, direct, o.entry, blob, process.env);
    const emptyBlob = join(bed.dir, 'empty-20.blob');
    build(node, direct, o.empty, emptyBlob, process.env);
    console.log(`node ${process.version} (${embeddedSnapshot(direct(SNAPSHOT_PROBE), process.env)}): blob built in ${buildMs.toFixed(0)} ms`);
    // The multiplexer lives in this process: the tool and tpm2-tools run asynchronously.
    const must = async (argv: string[], env?: NodeJS.ProcessEnv): Promise<void> => {
      const r = await runProcess(argv, { cwd: bed.dir, env });
      if (r.status !== 0) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
    };
    await must([node, '--snapshot-blob', blob, ...sign], bed.eveEnv);
    await must(['tpm2_readpublic', '-c', bed.handle, '-f', 'pem', '-o', 'ak.pem'], bed.tssEnv);
    await must(['openssl', 'dgst', '-sha256', '-verify', 'ak.pem', '-signature', 'eve.sig', 'message.txt']);
    await measure(
      `node ${process.version}`,
      {
        floor: direct(['-e', '0']),
        snap_empty: direct(['--snapshot-blob', emptyBlob]),
        help: direct([tools, 'sign', '--help']),
        help_snap: direct(['--snapshot-blob', blob, 'sign', '--help']),
        sign: direct([tools, ...sign]),
        sign_snap: direct(['--snapshot-blob', blob, ...sign]),
        // The snapshot's entry run as a plain script: lazy node:http/net/child_process alone.
        help_lazy: direct([o.entry, 'sign', '--help']),
        sign_lazy: direct([o.entry, ...sign]),
      },
      bed.eveEnv,
      bed.dir,
      o.n,
    );
    if (o.node18) {
      const d = debianNode18();
      const env = { ...bed.eveEnv, LD_LIBRARY_PATH: d.env.LD_LIBRARY_PATH };
      const blob18 = join(bed.dir, 'tools-18.blob');
      const ms18 = build(d.node, d.command, o.entry, blob18, env);
      const empty18 = join(bed.dir, 'empty-18.blob');
      build(d.node, d.command, o.empty, empty18, env);
      const [c18, a18] = d.command(['--snapshot-blob', blob18, ...sign]);
      await must([c18, ...a18], env);
      await must(['openssl', 'dgst', '-sha256', '-verify', 'ak.pem', '-signature', 'eve.sig', 'message.txt']);
      const probe = embeddedSnapshot(d.command(SNAPSHOT_PROBE), env);
      console.log(`\nDebian node ${d.version} (${probe}): blob built in ${ms18.toFixed(0)} ms (every run below goes through unshare + an overlay mount, row mount_only)`);
      await measure(
        `Debian node ${d.version}`,
        {
          floor: d.command(['-e', '0']),
          mount_only: ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${d.mountUsrShare} && exec "$0"`, 'true']],
          snap_empty: d.command(['--snapshot-blob', empty18]),
          help: d.command([tools, 'sign', '--help']),
          help_snap: d.command(['--snapshot-blob', blob18, 'sign', '--help']),
          sign: d.command([tools, ...sign]),
          sign_snap: d.command(['--snapshot-blob', blob18, ...sign]),
          help_lazy: d.command([o.entry, 'sign', '--help']),
          sign_lazy: d.command([o.entry, ...sign]),
        },
        env,
        bed.dir,
        o.n,
      );
    }
  } finally {
    await cleanupAll();
  }
}
