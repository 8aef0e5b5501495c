/**
 * Fault injection for the crash-safety tests: with EVE_TPM_SERVICE_CRASH_AT=<point> in its
 * environment the process SIGKILLs itself when it reaches that step of a key creation or
 * deletion, so every window between two durable steps is exercised deterministically (random
 * kill -9 timing alone rarely lands in the short ones). Without the variable: a no-op.
 */
export type CrashPoint =
  | 'create:after-tpm'
  | 'create:after-pending'
  | 'create:after-blobs'
  | 'create:after-persist'
  | 'delete:after-pending'
  | 'delete:after-evict'
  | 'delete:after-blobs';

export const CRASH_POINTS: readonly CrashPoint[] = [
  'create:after-tpm',
  'create:after-pending',
  'create:after-blobs',
  'create:after-persist',
  'delete:after-pending',
  'delete:after-evict',
  'delete:after-blobs',
];

const armed = process.env.EVE_TPM_SERVICE_CRASH_AT;

export function crashPoint(point: CrashPoint): void {
  if (armed === point) process.kill(process.pid, 'SIGKILL');
}
