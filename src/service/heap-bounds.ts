/**
 * The service bounds V8's heap itself. A streamed sign turns every body piece into garbage: by
 * default V8 lets the new space grow to 32 MiB, and what survives a couple of scavenges (a
 * piece lives while its SequenceUpdates run) piles up in the old space until a late full GC.
 *
 * `--max-semi-space-size` is read only when the heap is set up, before any of our code runs,
 * so setting it from here does nothing. These two are read each time V8 decides, so they take
 * effect when set at start (measured: a 64 MiB streamed sign's peak RSS 104 → 78 MiB):
 * - `--semi-space-growth-factor=1`: the new space keeps its initial size (2 MiB, Node 20 x64);
 * - `--heap-growing-percent=10`: the old space may grow 10% over what the last full GC kept.
 * A flag the operator gave (command line or NODE_OPTIONS) is left as they set it.
 *
 * Measured and not set (issue 13, P6; interleaved runs, 8 tenants idle): `--no-opt` saves ~4 MiB
 * (TurboFan's pages of Node's binary stay untouched) and `--lite-mode` ~7 MiB, but a 4 MiB
 * streamed sign then costs +64% / +134% CPU; `--single-threaded-gc`, `--v8-pool-size=1`,
 * `--max-lazy`, MALLOC_ARENA_MAX=2 and a forced GC after start moved nothing beyond the noise.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_FLAGS: ReadonlyArray<{ flag: string; operator: RegExp }> = [
  { flag: '--semi-space-growth-factor=1', operator: /^--(?:max-semi-space-size|min-semi-space-size|semi-space-growth-factor)(?:=|$)/ },
  { flag: '--heap-growing-percent=10', operator: /^--heap-growing-percent(?:=|$)/ },
];

/** The flags the service sets: those the operator did not choose themselves. */
export function heapFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].map((a) => a.replace(/_/g, '-'));
  return HEAP_FLAGS.filter((f) => !given.some((a) => f.operator.test(a))).map((f) => f.flag);
}

/** Sets them for this process; returns those set. */
export function boundHeap(): string[] {
  const flags = heapFlags(process.execArgv, process.env.NODE_OPTIONS);
  for (const f of flags) setFlagsFromString(f);
  return flags;
}
