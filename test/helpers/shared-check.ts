/**
 * vitest globalSetup: the vectors and guest tests read the team's shared folder. Without it
 * every such suite would fail with its own ENOENT stack; one line says what is missing instead.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_DIR } from './shared.js';

export default function setup(): void {
  if (existsSync(join(SHARED_DIR, 'vectors'))) return;
  const where = process.env.EVE_SHARED_DIR ? `EVE_SHARED_DIR=${SHARED_DIR}` : `${SHARED_DIR} (beside the checkout)`;
  // A thrown error would come with vitest's stack trace; this is a setup problem, not a bug.
  process.stderr.write(`error: the tests need the shared folder (vectors/, tools/) at ${where}: put it there or set EVE_SHARED_DIR\n`);
  process.exit(1);
}
