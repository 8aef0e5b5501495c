import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

/** Repository root (this file is test/helpers/shared.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The team's shared folder (vectors, tools): beside the checkout, or EVE_SHARED_DIR. */
export const SHARED_DIR = process.env.EVE_SHARED_DIR ?? resolve(REPO_ROOT, '../shared');
