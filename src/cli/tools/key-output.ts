/**
 * Writing a public key or a certificate (pubgetaik, ekpub, ekcert): the checks made before any
 * request (the output path, a tpm2-tools habit mistaken for a file name, binary data meant for a
 * terminal) and the write — to the file, or into the --json object when there is no file.
 */
import { basename } from 'node:path';
import { CliError, EXIT } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
import type { ToolContext } from '../run.js';

/** Checks `out` for `format` before the request; `binary`: the format is not text. */
export function checkKeyOutput(out: string, format: string, binary: boolean, what: string, ctx: ToolContext, hint = 'use -f FILE'): void {
  checkOutputPath(out, what);
  // tpm2-tools habit: `-f pem` means the format there; here -f is the output file.
  const named = basename(out).toLowerCase();
  if (out !== STDOUT && ['pem', 'der', 'tss'].includes(named)) ctx.warn(`warning: writing to a file named '${out}'; did you mean --format ${named}?`);
  // With --json and no file, the data goes into the JSON object instead of raw on stdout.
  if (out === STDOUT && !ctx.json && binary && ctx.io.stdout.isTTY) {
    throw new CliError(`refusing to write binary ${format} data to a terminal; ${hint}`, EXIT.USAGE, 'USAGE');
  }
}

/** Writes `data` to `out` and, with --json, prints `fields` and where the data went (or the data itself, under `binaryKey` as base64). */
export async function writeKeyOutput(out: string, data: Uint8Array | string, what: string, ctx: ToolContext, fields: Record<string, unknown>, binaryKey = 'data'): Promise<void> {
  if (out !== STDOUT || !ctx.json) await writeOutput(out, data, what, ctx.io.stdout);
  if (!ctx.json) return;
  const content = out !== STDOUT ? { file: out } : typeof data === 'string' ? { pem: data } : { [binaryKey]: Buffer.from(data).toString('base64') };
  await ctx.printJson({ ...fields, ...content });
}
