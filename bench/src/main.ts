/**
 * The benchmark (`npm run bench`): seven groups, each a ratio of two things measured side by
 * side in the same run. Prints a table per group on stdout and last issue 13's goals (before /
 * after), writes everything measured to .bench/results.json (or --out FILE), and stops
 * everything it started on the way out.
 *
 *   --smoke          tiny counts (all seven groups, well under a minute)
 *   --only 1,3,5     run only these groups
 *   --out FILE       where the JSON goes (default .bench/results.json)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { type Ctx, type Group, type GroupResult, type Table } from './context.js';
import { cleanupAll, installSignalHandlers, isInterrupted } from './lifecycle.js';
import { roundDeep } from './stats.js';
import { marshalGroup } from './groups/marshal.js';
import { largeGroup } from './groups/large.js';
import { overheadGroup } from './groups/overhead.js';
import { throughputGroup } from './groups/throughput.js';
import { toolsGroup } from './groups/tools.js';
import { footprintGroup } from './groups/footprint.js';
import { rawGroup } from './groups/raw.js';
import { BEFORE_SOURCE, evaluateGoals, goalsTable } from './goals.js';

const GROUPS: Group[] = [overheadGroup, throughputGroup, marshalGroup, toolsGroup, largeGroup, footprintGroup, rawGroup];

interface Options {
  smoke: boolean;
  only?: Set<number>;
  out: string;
}

function parseArgs(args: string[], root: string): Options {
  const o: Options = { smoke: false, out: resolve(root, '.bench', 'results.json') };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--smoke') o.smoke = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      o.only = new Set(
        value()
          .split(',')
          .map((s) => Number(s.trim())),
      );
      for (const g of o.only) if (!GROUPS.some((x) => x.id === g)) throw new Error(`--only: no group ${g} (groups are 1-7)`);
    } else if (a === '--out' || a.startsWith('--out=')) o.out = resolve(value());
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run bench [-- --smoke] [-- --only 1,3,5] [-- --out FILE]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return o;
}

function renderTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(String))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    '  ' +
    r
      .map((c, i) => (i === 0 || t.leftAligned ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]!), '  ' + widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

function render(r: GroupResult): string {
  const load = r.loadAvg ? `, load ${r.loadAvg[0].toFixed(1)} → ${r.loadAvg[1].toFixed(1)}` : '';
  const out = [`\n${r.id}. ${r.title}${r.seconds !== undefined ? `  [${r.seconds.toFixed(1)} s${load}]` : ''}`];
  if (r.error) out.push(`  FAILED: ${r.error}`);
  for (const t of r.tables) out.push(renderTable(t));
  for (const n of r.notes) out.push(`  · ${n}`);
  return out.join('\n');
}

export async function main(args: string[], env: { root: string; buildError?: string }): Promise<number> {
  installSignalHandlers();
  const opts = parseArgs(args, env.root);
  const t0 = performance.now();
  const ctx: Ctx = {
    root: env.root,
    smoke: opts.smoke,
    ...(env.buildError ? { buildError: env.buildError } : {}),
    log: (m) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${m}\n`),
  };
  const machine = {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    /** 1/5/15-minute load averages at the start: other work on the machine shows here. */
    loadAvg: loadavg(),
  };
  process.stdout.write(
    `eve-tpm-tools benchmark${opts.smoke ? ' (SMOKE: tiny counts, figures are not meaningful)' : ''} — ${machine.cpus} × ${machine.cpuModel ?? 'cpu'}, ${machine.memGiB} GiB, Node ${machine.node}, load average ${machine.loadAvg.map((l) => l.toFixed(1)).join(' / ')}\n`,
  );
  process.stdout.write('Every figure is a ratio of two things measured side by side in this run (interleaved, medians). A load average above the core count means other work shared the machine.\n');

  const results: GroupResult[] = [];
  let failed = false;
  for (const g of GROUPS) {
    if (opts.only && !opts.only.has(g.id)) continue;
    if (isInterrupted()) break;
    ctx.log(`group ${g.id}: ${g.title}`);
    const g0 = performance.now();
    const load0 = loadavg()[0]!;
    let r: GroupResult;
    try {
      r = { id: g.id, title: g.title, ...(await g.run(ctx)) };
    } catch (e) {
      failed = true;
      r = { id: g.id, title: g.title, tables: [], notes: [], data: {}, error: (e as Error).stack ?? String(e) };
      ctx.log(`group ${g.id} failed: ${(e as Error).message}`);
    } finally {
      await cleanupAll();
    }
    r.seconds = (performance.now() - g0) / 1000;
    r.loadAvg = [load0, loadavg()[0]!];
    results.push(r);
    process.stdout.write(render(r) + '\n');
  }
  const goals = evaluateGoals(results, opts.smoke);
  process.stdout.write(
    `\nGoals of issues 13 (P) and 15 (F): goal | before | after\n${renderTable(goalsTable(goals))}\n  · Before (P): ${BEFORE_SOURCE}. Before (F4): ${goals.find((g) => g.id === 'F4')?.source ?? '-'}. After: this run${opts.smoke ? ' (smoke: not judged)' : ''}; "-" = not judged (group not run, failed, or smoke).\n`,
  );
  const total = (performance.now() - t0) / 1000;
  process.stdout.write(`\nTotal ${total.toFixed(1)} s. Full results: ${opts.out}\n`);
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(
    opts.out,
    JSON.stringify(roundDeep({ date: new Date().toISOString(), smoke: opts.smoke, machine, seconds: total, groups: results, goals }), null, 2) + '\n',
  );
  return failed ? 1 : 0;
}
