/**
 * Compiles test/schema/narrowing.types.ts with the project's compiler options and fails on any
 * diagnostic: the type-level checks there (narrowing on union selectors, literal TPMI_ types,
 * typed attribute flags, and every `@ts-expect-error` being a real error) hold even when only
 * vitest runs. A broken check is reported with its line.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function compile(file: string): string[] {
  const configPath = join(ROOT, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT);
  const program = ts.createProgram([file], { ...parsed.options, noEmit: true });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const name = d.file ? d.file.fileName.slice(ROOT.length + 1) : '';
    return `${name}${where ? `:${where.line + 1}` : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

describe('schema types', () => {
  it('narrowing.types.ts compiles: unions narrow on their selector, forbidden reads are errors', () => {
    expect(compile(join(ROOT, 'test/schema/narrowing.types.ts'))).toEqual([]);
  }, 120_000);

  it('the check can fail: a read of the wrong arm is reported', () => {
    // A throwaway file beside the real one, compiled the same way (proves compile() reports).
    const diags = compileText(`
      import { TPM_ALG } from '../../src/tpm/constants.js';
      import type { TPMT_PUBLIC } from '../../src/tpm/structures.js';
      export function f(p: TPMT_PUBLIC) { if (p.type === TPM_ALG.RSA) return p.parameters.curveID; return 0; }
    `);
    expect(diags.join('\n')).toMatch(/curveID/);
  }, 120_000);
});

function compileText(text: string): string[] {
  const file = join(ROOT, 'test/schema/__probe__.ts');
  const host = ts.createCompilerHost({});
  const read = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError) =>
    resolve(name) === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, onError);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], { ...parsed.options, noEmit: true }, host);
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' '));
}
