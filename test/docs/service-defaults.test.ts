/**
 * docs/SERVICE.md's flag table is the one place the service's defaults are written down for
 * people; `eve-tpm-service serve --help` and DEFAULT_CONFIG are what runs. They must agree, and
 * every flag --help lists must be in the table (a copy elsewhere once drifted: --max-connections).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/service/config.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { buildServiceBin, runBin } from '../service/child.js';

interface DocRow {
  flag: string;
  value: string;
}

/** `| \`--a\`, \`--b\` (key) | \`x\`, y | meaning |` → one row per flag with its default. */
function docRows(markdown: string): DocRow[] {
  const section = markdown.slice(markdown.indexOf('## Running it'), markdown.indexOf('\n## ', markdown.indexOf('## Running it') + 1));
  const rows: DocRow[] = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !cells[1]!.startsWith('`--')) continue;
    const flags = [...cells[1]!.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]!);
    const values = cells[2]!.split(',').map((v) => v.replace(/`/g, '').trim());
    expect(values.length, `defaults of ${flags.join(', ')}`).toBe(flags.length);
    flags.forEach((flag, i) => rows.push({ flag, value: values[i]! }));
  }
  return rows;
}

/** `--max-connections <n>  text (default 256; …)` → { '--max-connections': '256' }, from wrapped help. */
function helpDefaults(help: string): Map<string, string | undefined> {
  const entries: string[] = [];
  for (const line of help.split('\n')) {
    if (/^\s{2}-/.test(line)) entries.push(line.trim());
    else if (entries.length && /^\s{4,}\S/.test(line)) entries[entries.length - 1] += ` ${line.trim()}`;
  }
  const out = new Map<string, string | undefined>();
  for (const e of entries) {
    const flag = /(--[a-z-]+)/.exec(e)![1]!;
    out.set(flag, /\(default ([^;)]+)[;)]/.exec(e)?.[1]?.trim());
  }
  return out;
}

const camel = (flag: string): string => flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** The same value written differently: 0x10000 and 65536, off and false, vsock:8877 and [it]. */
function normal(v: unknown): string {
  if (Array.isArray(v)) return v.map(normal).join(',');
  if (v === false || v === 'off') return 'off';
  if (typeof v === 'number') return String(v);
  const s = String(v);
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(s)) return String(Number(s));
  return s;
}

describe('docs/SERVICE.md flag table', () => {
  let bin: { bin: string; cleanup: () => void };
  beforeAll(() => {
    bin = buildServiceBin();
  });
  afterAll(() => bin?.cleanup());

  it('gives the defaults DEFAULT_CONFIG and serve --help give, for every flag --help lists', () => {
    const rows = docRows(readFileSync(join(REPO_ROOT, 'docs/SERVICE.md'), 'utf8'));
    expect(rows.length).toBeGreaterThan(20);
    const r = runBin(bin.bin, ['serve', '--help']);
    expect(r.status, r.stderr).toBe(0);
    const help = helpDefaults(r.stdout);
    const documented = new Set(rows.map((row) => row.flag));
    const undocumented = [...help.keys()].filter((f) => f !== '--help' && !documented.has(f));
    expect(undocumented, 'serve flags missing from the docs/SERVICE.md table').toEqual([]);
    let compared = 0;
    for (const { flag, value } of rows) {
      expect(help.has(flag), `${flag} is documented but serve --help has no such flag`).toBe(true);
      const key = camel(flag);
      if (value !== '—' && key in DEFAULT_CONFIG) {
        expect(normal(value), `${flag}: docs/SERVICE.md vs DEFAULT_CONFIG.${key}`).toBe(normal((DEFAULT_CONFIG as unknown as Record<string, unknown>)[key]));
        compared++;
      }
      const shown = help.get(flag);
      if (shown !== undefined) {
        expect(normal(value), `${flag}: docs/SERVICE.md vs serve --help`).toBe(normal(shown));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(40);
  });
});
