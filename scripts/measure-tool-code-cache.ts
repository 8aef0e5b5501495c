/**
 * Issue 13, P4: does a V8 code cache of the tools bundle cut a tool's wall time?
 * Run by scripts/measure-tool-code-cache.mjs (which writes the measuring loader and bundles this).
 * Interleaved fresh processes, p50 of N each, on group 4's bed (a real sign against the service
 * on swtpm): `node -e 0`; the per-tool bundle and eve-tools.cjs as run today; eve-tools.cjs
 * through vm.Script without a cache (vm), with a cache made right after compiling (cc_compile),
 * after a `sign --help` run (cc_help) and after a full sign (cc_run); `sign --help` plain and
 * with cc_run's cache; wall and CPU time of each. Then the same on Debian's Node 18 when asked
 * (--node18). Results: docs/TOOLS.md "Start-up time: a V8 code cache". Nothing here is a test.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import type { Ctx } from '../bench/src/context.js';
import { distBin } from '../bench/src/env.js';
import { runProcess, toolBed } from '../bench/src/groups/tools.js';
import { cleanupAll } from '../bench/src/lifecycle.js';
import { interleave, summarize } from '../bench/src/stats.js';
import { debianNode18 } from '../test/helpers/debian-node18.js';

export interface Opts {
  root: string;
  loader: string;
  n: number;
  node18: boolean;
}

type Argv = [string, string[]];
interface Variant {
  argv: Argv;
  env?: NodeJS.ProcessEnv;
}

// Each run under a small python parent that reports the child's wall time and its CPU time
// (user + system, from wait4): on a loaded machine the CPU time is the steadier figure.
const TIMER = `import os, sys, time
t = time.perf_counter(); pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)
_, st, ru = os.wait4(pid, 0)
sys.stderr.write("P4 %d %.3f %.3f\\n" % (os.waitstatus_to_exitcode(st), (time.perf_counter() - t) * 1e3, (ru.ru_utime + ru.ru_stime) * 1e3))`;

// The system's python: a version manager's shim (pyenv) costs a shell per run.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

async function measure(label: string, vs: Record<string, Variant>, env: NodeJS.ProcessEnv, cwd: string, n: number): Promise<void> {
  const cpu: Record<string, number[]> = {};
  const go = async (k: string): Promise<number> => {
    const { argv: [c, a], env: e } = vs[k]!;
    const r = await runProcess([PYTHON, '-c', TIMER, c, ...a], { env: { ...env, ...e }, cwd });
    const m = /^P4 (-?\d+) ([\d.]+) ([\d.]+)$/m.exec(r.stderr);
    const rest = r.stderr.replace(/^P4 .*\n/m, '').trim();
    if (r.status !== 0 || !m || m[1] !== '0' || rest) throw new Error(`${k}: exit ${m?.[1] ?? r.status}: ${rest}`);
    (cpu[k] ??= []).push(Number(m[3]));
    return Number(m[2]);
  };
  for (const k of Object.keys(vs)) await go(k);
  for (const k of Object.keys(cpu)) cpu[k] = [];
  const la0 = loadavg()[0]!.toFixed(2);
  const keys = Object.keys(vs);
  const samples = await interleave(keys, n, go);
  const la1 = loadavg()[0]!.toFixed(2);
  const floor = summarize(samples.floor!).p50;
  console.log(`\n${label}: ${n} runs of each, interleaved; load average ${la0} → ${la1}`);
  console.log('variant'.padEnd(12), 'p50 ms'.padStart(8), 'p90 ms'.padStart(8), '÷ node -e 0'.padStart(12), 'cpu p50'.padStart(9), '', 'change (wall, cpu)');
  for (const k of keys) {
    const s = summarize(samples[k]!);
    const c = summarize(cpu[k]!).p50;
    const base = k.startsWith('help') ? 'help' : k === 'floor' ? undefined : 'multi';
    const pct = (a: number, b: number): string => `${(((a - b) / b) * 100).toFixed(1)}%`;
    const change = base && base !== k ? `  ${pct(s.p50, summarize(samples[base]!).p50)}, ${pct(c, summarize(cpu[base]!).p50)} vs ${base}` : '';
    console.log(k.padEnd(12), s.p50.toFixed(1).padStart(8), s.p90.toFixed(1).padStart(8), (s.p50 / floor).toFixed(3).padStart(12), c.toFixed(1).padStart(9), change);
  }
}

async function variants(label: string, node: (args: string[]) => Argv, o: Opts, ctx: Ctx, bed: Awaited<ReturnType<typeof toolBed>>, env: NodeJS.ProcessEnv, tag: string): Promise<void> {
  const tools = distBin(ctx, 'eve-tools');
  const sign = ['sign', '-k', bed.handle, '-m', 'message.txt', '-g', '0x00B', '-s', 'eve.sig'];
  const must = async ([c, a]: Argv, e: NodeJS.ProcessEnv = {}): Promise<void> => {
    const r = await runProcess([c, ...a], { cwd: bed.dir, env: { ...env, ...e } });
    if (r.status !== 0) throw new Error(`${c} ${a.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
  };
  const cache = (k: string): string => join(bed.dir, `${tag}-${k}.cache`);
  await must(node([o.loader, tools, ...sign]), { P4_CACHE: cache('compile'), P4_MAKE: 'compile' });
  await must(node([o.loader, tools, 'sign', '--help']), { P4_CACHE: cache('help'), P4_MAKE: 'run' });
  await must(node([o.loader, tools, ...sign]), { P4_CACHE: cache('run'), P4_MAKE: 'run' });
  await must(['openssl', ['dgst', '-sha256', '-verify', 'ak.pem', '-signature', 'eve.sig', 'message.txt']]);
  const cc = (k: string): Variant => ({ argv: node([o.loader, tools, ...sign]), env: { P4_CACHE: cache(k) } });
  await measure(
    label,
    {
      floor: { argv: node(['-e', '0']) },
      sign: { argv: node([distBin(ctx, 'eve_tools_tpm2_sign'), ...sign.slice(1)]) },
      multi: { argv: node([tools, ...sign]) },
      vm: { argv: node([o.loader, tools, ...sign]) },
      cc_compile: cc('compile'),
      cc_help: cc('help'),
      cc_run: cc('run'),
      help: { argv: node([tools, 'sign', '--help']) },
      help_cc_run: { argv: node([o.loader, tools, 'sign', '--help']), env: { P4_CACHE: cache('run') } },
    },
    env,
    bed.dir,
    o.n,
  );
}

export async function run(o: Opts): Promise<void> {
  const ctx: Ctx = { root: o.root, smoke: false, log: (m) => process.stderr.write(`${m}\n`) };
  try {
    const bed = await toolBed(ctx);
    const r = await runProcess(['tpm2_readpublic', '-c', bed.handle, '-f', 'pem', '-o', 'ak.pem'], { cwd: bed.dir, env: bed.tssEnv });
    if (r.status !== 0) throw new Error(`tpm2_readpublic: ${r.stderr}`);
    await variants(`node ${process.version}`, (a) => [process.execPath, a], o, ctx, bed, bed.eveEnv, 'n20');
    if (o.node18) {
      const d = debianNode18();
      await variants(`Debian node ${d.version} (every run through unshare + an overlay mount)`, d.command, o, ctx, bed, { ...bed.eveEnv, LD_LIBRARY_PATH: d.env.LD_LIBRARY_PATH }, 'n18');
    }
  } finally {
    await cleanupAll();
  }
}
