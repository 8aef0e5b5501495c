#!/usr/bin/env node
// Counts type assertions (`x as T`, `<T>x`), `as any` and `any` type nodes in the TypeScript
// sources under a directory (default src/), with the compiler's own parser — so strings,
// comments and `as const` are not miscounted. `as const` is not an assertion of a type and is
// left out. Usage: node scripts/count-casts.mjs [dir] [--files] [--json]
// (test/schema/casts.test.ts imports countCasts/countDir from here.)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The .ts files under `d`, recursively (declaration files left out). */
export function walk(d) {
  const out = [];
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.(ts|mts|cts)$/.test(e) && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** { assertions, asAny, anyTypes } of one file's text. */
export function countCasts(fileName, text) {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const c = { assertions: 0, asAny: 0, anyTypes: 0 };
  const visit = (n) => {
    if (ts.isAsExpression(n) || ts.isTypeAssertionExpression(n)) {
      const t = n.type;
      const isConst = ts.isTypeReferenceNode(t) && t.typeName.getText(sf) === 'const';
      if (!isConst) {
        c.assertions++;
        if (t.kind === ts.SyntaxKind.AnyKeyword) c.asAny++;
      }
    }
    if (n.kind === ts.SyntaxKind.AnyKeyword) c.anyTypes++;
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return c;
}

/** Counts of every file under `dir` (paths relative to `base`), and their total. */
export function countDir(dir, base = process.cwd()) {
  const total = { assertions: 0, asAny: 0, anyTypes: 0 };
  const files = {};
  for (const f of walk(dir)) {
    const c = countCasts(f, readFileSync(f, 'utf8'));
    for (const k of Object.keys(total)) total[k] += c[k];
    files[relative(base, f)] = c;
  }
  return { total, files };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const dir = resolve(args.find((a) => !a.startsWith('--')) ?? 'src');
  const { total, files } = countDir(dir);
  if (args.includes('--json')) console.log(JSON.stringify({ total, files }, null, 2));
  else {
    if (args.includes('--files')) {
      for (const [f, c] of Object.entries(files)) if (c.assertions || c.anyTypes) console.log(`${f}\t${c.assertions}\t${c.asAny}\t${c.anyTypes}`);
    }
    console.log(`type assertions: ${total.assertions} (as any: ${total.asAny}); any type nodes: ${total.anyTypes}`);
  }
}
