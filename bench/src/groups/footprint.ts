/**
 * Group 6 — footprint: the service's resident memory idle, under load and after it; the peak
 * memory of one tool process against tpm2_sign and a bare `node -e 0`; the size of what is
 * shipped. Resident sizes come from /proc/<pid>/status (VmRSS, VmHWM); a short-lived process's
 * peak from the kernel's rusage (ru_maxrss) via /usr/bin/time, or python3 when it is absent.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mib, type Ctx, type Group } from '../context.js';
import { memStatus, sampleMemory, startService, startTwinSwtpms } from '../env.js';
import { median } from '../stats.js';
import { runProcess, toolBed } from './tools.js';

const MESSAGE = new Uint8Array(32).fill(0x63);

/** Anonymous memory (heap, stacks, malloc) of a running process, KiB; the rest of its RSS is file pages (Node's binary, libraries). */
function anonymousKiB(pid: number): number {
  try {
    return Number(/^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

/** Peak resident memory (KiB) of a process run to completion. */
async function peakRssKiB(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<number> {
  const wrapped = existsSync('/usr/bin/time')
    ? ['/usr/bin/time', '-f', 'MAXRSS %M', ...argv]
    : [
        'python3',
        '-c',
        'import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:])\nsys.stderr.write("MAXRSS %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)',
        ...argv,
      ];
  const r = await runProcess(wrapped, opts);
  const m = /MAXRSS (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')}: exit ${r.status} ${r.stderr.trim()}`);
  return Number(m[1]);
}

export const footprintGroup: Group = {
  id: 6,
  title: 'Footprint: service and tool memory, shipped size',
  async run(ctx: Ctx) {
    const loadMs = ctx.smoke ? 400 : 3000;
    const clients = 16;
    const runs = ctx.smoke ? 2 : 7;

    // The service as deployed by default (blobs key store), 8 tenants with a key each.
    const [sw] = await startTwinSwtpms(1);
    const svc = await startService(ctx, { tpm: sw!.spec, tenants: 8 });
    const keys: string[] = [];
    for (let t = 0; t < 8; t++) keys.push((await svc.client(t).createKey({ type: 'rsa' })).handle);
    await new Promise((r) => setTimeout(r, ctx.smoke ? 200 : 1000));
    const idle = memStatus(svc.pid())!;
    const idleAnonKiB = anonymousKiB(svc.pid());
    ctx.log(`footprint: service under load, ${clients} clients for ${loadMs} ms`);
    const sampler = sampleMemory(svc.pid(), 100);
    const end = performance.now() + loadMs;
    let signs = 0;
    await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        const c = svc.client(i % 8);
        while (performance.now() < end) {
          await c.sign(keys[i % 8]!, { message: MESSAGE });
          signs++;
        }
      }),
    );
    const load = sampler.stop();
    await new Promise((r) => setTimeout(r, ctx.smoke ? 200 : 2000));
    const after = memStatus(svc.pid())!;
    await svc.stop();

    ctx.log(`footprint: peak memory of single tool runs (${runs} each)`);
    const bed = await toolBed(ctx);
    const procs = {
      eve: [process.execPath, bed.signTool, '-k', bed.handle, '-m', 'message.txt', '-g', '0x00B', '-s', 'eve.sig'],
      tpm2_sign: ['tpm2_sign', '-c', bed.handle, '-g', 'sha256', '-f', 'plain', '-o', 'tss.sig', 'message.txt'],
      node: [process.execPath, '-e', '0'],
    };
    const peaks: Record<keyof typeof procs, number[]> = { eve: [], tpm2_sign: [], node: [] };
    for (let i = 0; i < runs; i++) {
      for (const k of Object.keys(procs) as (keyof typeof procs)[]) {
        peaks[k].push(await peakRssKiB(procs[k], { env: k === 'tpm2_sign' ? bed.tssEnv : bed.eveEnv, cwd: bed.dir }));
      }
    }
    const med = Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, median(v)])) as Record<keyof typeof procs, number>;
    const size = (name: string): number => {
      const p = `${ctx.root}/dist/bin/${name}.cjs`;
      return existsSync(p) ? statSync(p).size : Number.NaN;
    };
    const kib = (b: number): string => (b / 1024).toFixed(0);
    return {
      tables: [
        {
          columns: ['service (RSS, MiB)', 'MiB'],
          rows: [
            ['idle, 8 tenants × 1 key (VmRSS)', mib(idle.rssKiB * 1024)],
            ['  of it anonymous (JS heap, code, malloc)', mib(idleAnonKiB * 1024)],
            ["  of it file pages (Node's binary, libraries)", mib((idle.rssKiB - idleAnonKiB) * 1024)],
            [`under load: peak VmRSS, ${clients} clients signing (${signs} signs)`, mib(load.peakRssKiB * 1024)],
            ['peak since start (VmHWM)', mib(load.hwmKiB * 1024)],
            ['2 s after the load (VmRSS)', mib(after.rssKiB * 1024)],
          ],
        },
        {
          columns: ['one process, peak RSS (ru_maxrss)', 'MiB', '÷ tpm2_sign'],
          rows: [
            ['eve_tools_tpm2_sign (sign 32 bytes)', mib(med.eve * 1024), `${(med.eve / med.tpm2_sign).toFixed(1)}×`],
            ['tpm2_sign (hash+sign)', mib(med.tpm2_sign * 1024), '1.0×'],
            ['node -e 0', mib(med.node * 1024), `${(med.node / med.tpm2_sign).toFixed(1)}×`],
          ],
        },
        {
          columns: ['shipped (self-contained bundles)', 'KiB'],
          rows: [
            ['dist/bin/eve_tools_tpm2_sign.cjs', kib(size('eve_tools_tpm2_sign'))],
            ['dist/bin/eve-tpm-service.cjs', kib(size('eve-tpm-service'))],
          ],
        },
      ],
      notes: [
        `Medians of ${runs} runs for the processes. The service ran with its defaults (blobs key store, info-level JSON logs to a file).`,
        `Limit: Node itself — a bare node -e 0 peaks at ${mib(med.node * 1024)} MiB; the tool adds ${mib((med.eve - med.node) * 1024)} MiB. The service's heap grows with garbage between collections (V8 sizes its young generation to the allocation rate), not with the number of requests served: compare "under load" with "after".`,
      ],
      data: { idle, idleAnonKiB, load: { peakRssKiB: load.peakRssKiB, hwmKiB: load.hwmKiB, signs, clients, ms: loadMs }, after, toolPeaksKiB: peaks, medians: med },
    };
  },
};
