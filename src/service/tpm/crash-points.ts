/**
 * Fault injection for the crash-safety tests: with EVE_TPM_SERVICE_CRASH_AT=<point> in its
 * environment the process SIGKILLs itself when it reaches that step of a key creation or
 * deletion (or of a durable file write, or right after a TPM command), so every window between
 * two durable steps is exercised deterministically (random kill -9 timing alone rarely lands in
 * the short ones). Without the variable: a no-op.
 */
export type CrashPoint =
  // A general key's app parent is written, its key not yet made (the record's first general key).
  | 'create:after-parent'
  | 'create:after-tpm'
  | 'create:after-pending'
  | 'create:after-blobs'
  | 'create:after-persist'
  | 'delete:after-pending'
  | 'delete:after-evict'
  | 'delete:after-blobs'
  // Inside every durable file write (registry, blobs): the temp file is written and fsynced
  // but not renamed, or renamed but the directory not yet fsynced — what a host losing power
  // mid-write leaves behind. Counted per process: `write:after-temp@3` fires on the 3rd write.
  | 'write:after-temp'
  | 'write:after-rename';

/** The points every key creation and deletion passes (create:after-parent only a general key's first). */
export const CRASH_POINTS: readonly CrashPoint[] = [
  'create:after-tpm',
  'create:after-pending',
  'create:after-blobs',
  'create:after-persist',
  'delete:after-pending',
  'delete:after-evict',
  'delete:after-blobs',
];

// `<point>` or `<point>@<n>`: the n-th time the point is reached (default the first).
const spec = /^(.+?)(?:@([1-9][0-9]*))?$/.exec(process.env.EVE_TPM_SERVICE_CRASH_AT ?? '');
const armed = spec?.[1];
const nth = Number(spec?.[2] ?? 1);
let reached = 0;

export function crashPoint(point: CrashPoint): void {
  if (armed === point && ++reached >= nth) process.kill(process.pid, 'SIGKILL');
}

/**
 * `after:<Command>` (e.g. `after:Load`, `after:SequenceUpdate@2`): killed as soon as the TPM
 * has answered that command, so the TPM keeps whatever the request had loaded in it — the
 * service dying in the middle of a sign, deterministically.
 */
function crashAfterTpmCommand(command: string): void {
  if (armed !== undefined && armed === `after:${command}` && ++reached >= nth) process.kill(process.pid, 'SIGKILL');
}

/**
 * The executor's onExchange for an armed `after:` point; undefined otherwise, so that a running
 * service reports nothing per TPM command (no event object, no clock read).
 */
export const crashAfterTpmCommandHook: ((e: { command: string }) => void) | undefined = armed?.startsWith('after:') ? (e) => crashAfterTpmCommand(e.command) : undefined;
