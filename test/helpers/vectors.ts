/**
 * The one reader of the shared vectors (SHARED_DIR/vectors). A missing or unreadable file
 * throws one line naming it, instead of each suite's own ENOENT stack at import.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_DIR } from './shared.js';

/** Path of a shared vector file, e.g. `vectorPath('rc-tpm2-tss.json')`. */
export const vectorPath = (file: string): string => join(SHARED_DIR, 'vectors', file);

/** The parsed JSON of a shared vector file; the caller names its shape. */
export function loadVectors<T>(file: string): T {
  const path = vectorPath(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`;
    throw new Error(`shared vector file ${path} ${why}: put the shared folder beside the checkout or set EVE_SHARED_DIR`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`shared vector file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}
