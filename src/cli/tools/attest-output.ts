/** What the attestation tools share in their output: the output files they take, the binding line. */
import { resolve } from 'node:path';
import type { AppBinding } from '../../service/client/client.js';
import { usageError } from '../errors.js';
import { checkOutputPath } from '../output.js';

/**
 * The given output files as [option, path, what] (unset ones dropped), each checked writable
 * (checkOutputPath) before any request; two options naming one
 * file would leave only the last written, so that is a usage error. `-` (standard output) is
 * refused: these files are binary and go together.
 */
export function outputFiles(list: ReadonlyArray<readonly [string, string | undefined, string]>): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  for (const [opt, path, what] of list) {
    if (path === undefined) continue;
    if (path === '-') throw usageError(`${opt}: give a file (standard output is not taken here)`);
    const same = out.find(([, p]) => resolve(p) === resolve(path));
    if (same) throw usageError(`${same[0]} and ${opt} name the same file '${path}'`);
    checkOutputPath(path, what);
    out.push([opt, path, what]);
  }
  return out;
}

/** The app binding as printed after a result. */
export function bindingText(b: AppBinding): string {
  return `binding: ${b.label}\napp: ${b.identity}\n`;
}
