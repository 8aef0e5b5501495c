/**
 * Guest-side reporting shared by the scripts that run inside the qemu guest: one
 * `RESULT <name> PASS|FAIL <detail>` line per check on stdout (the host test asserts each),
 * progress on stderr, and a closing `SUMMARY <n> passed, <m> failed`.
 */
/** When the script started (report times are relative to it). */
export const t0 = Date.now();
let passed = 0;
let failed = 0;

/** Debugging aid: SKIP_CHECKS=a,b leaves those checks out (no RESULT line, so the host test fails). */
const SKIP = new Set((process.env.SKIP_CHECKS ?? '').split(',').filter(Boolean));

export function result(name: string, ok: boolean, detail: string): void {
  if (ok) passed++;
  else failed++;
  console.log(`RESULT ${name} ${ok ? 'PASS' : 'FAIL'} ${detail.replace(/\s+/g, ' ')}`);
}

export const log = (msg: string): void => console.error(`[${String(Date.now() - t0).padStart(6)} ms] ${msg}`);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Runs one check; its returned text (or the error) becomes the RESULT line. True if it passed. */
export async function check(name: string, fn: () => Promise<string>): Promise<boolean> {
  if (SKIP.has(name)) return true;
  const start = Date.now();
  log(`${name} ...`);
  try {
    const detail = await fn();
    result(name, true, `${detail} (${Date.now() - start} ms)`);
    return true;
  } catch (e) {
    result(name, false, `${(e as Error).stack ?? String(e)} (${Date.now() - start} ms)`);
    return false;
  }
}

/** Prints the SUMMARY line and exits (the vsock addon's threads would keep the loop alive). */
export function finish(): never {
  console.log(`SUMMARY ${passed} passed, ${failed} failed (${Date.now() - t0} ms)`);
  process.exit(failed === 0 ? 0 : 1);
}
