/**
 * Reading the kernel's counter files: a whole small file, asynchronously (reads never block the
 * event loop), and its numbers exactly. Every failure is a reason, never an exception: a
 * usage reading shows what it could read and says why the rest is missing.
 */
import { readFile } from 'node:fs/promises';
import type { UsageMissing } from '../protocol/messages.js';

/** A counter file is a few hundred bytes; more means it is not the file we think. */
const MAX_FILE_BYTES = 64 * 1024;

export type Read<T> = { ok: true; value: T } | { ok: false; reason: string };

export const missing = (reason: string, configured = true): UsageMissing => ({ available: false, configured, reason });

/** The file's text, or why it cannot be read (by its base name: host paths are not the app's business). */
export async function readText(path: string, shown: string): Promise<Read<string>> {
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_FILE_BYTES) return { ok: false, reason: `${shown} is larger than ${MAX_FILE_BYTES} bytes` };
    return { ok: true, value: buf.toString('utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, reason: `${shown} does not exist` };
    if (code === 'EACCES' || code === 'EPERM') return { ok: false, reason: `${shown} is not readable by the service` };
    if (code === 'EISDIR') return { ok: false, reason: `${shown} is a directory` };
    return { ok: false, reason: `${shown} cannot be read (${code ?? (e as Error).message})` };
  }
}

/**
 * A decimal counter as a JSON-safe number. Counters are UINT64: parsed as bigint, refused when
 * beyond 2^53 − 1 rather than rounded.
 */
export function counter(text: string): number | undefined {
  const t = text.trim();
  if (!/^[0-9]{1,20}$/.test(t)) return undefined;
  const n = BigInt(t);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

/** A decimal UINT64 counter exactly, for nanosecond counters that pass 2^53 before they are scaled down. */
export function bigCounter(text: string): bigint | undefined {
  const t = text.trim();
  if (!/^[0-9]{1,20}$/.test(t)) return undefined;
  const n = BigInt(t);
  return n < 1n << 64n ? n : undefined;
}

/** A bigint that fits a JSON-safe number, or undefined (refused rather than rounded). */
export const safeNumber = (n: bigint): number | undefined => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined);

/** A file of one counter (memory.current, pids.current, statistics/rx_bytes). */
export function singleCounter(r: Read<string>, shown: string): Read<number> {
  if (!r.ok) return r;
  const n = counter(r.value);
  return n === undefined ? { ok: false, reason: `${shown} does not hold a counter (${JSON.stringify(r.value.trim().slice(0, 40))})` } : { ok: true, value: n };
}

/**
 * A flat-keyed file ("key value" lines: cpu.stat, memory.stat). Lines that are not a key and a
 * counter are skipped: newer kernels add keys, and a value out of range is left out, not guessed.
 */
export function flatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_0-9]+) (\S+)$/.exec(line.trim());
    if (!m) continue;
    const n = counter(m[2]!);
    if (n !== undefined) out.set(m[1]!, n);
  }
  return out;
}

/** A nested-keyed file ("MAJ:MIN key=value …" lines: io.stat). */
export function nestedKeyed(text: string): Array<{ key: string; values: Map<string, number> }> {
  const out: Array<{ key: string; values: Map<string, number> }> = [];
  for (const line of text.split('\n')) {
    const [key, ...pairs] = line.trim().split(/\s+/);
    if (!key) continue;
    const values = new Map<string, number>();
    for (const p of pairs) {
      const m = /^([a-z_0-9]+)=(\S+)$/.exec(p);
      const n = m ? counter(m[2]!) : undefined;
      if (m && n !== undefined) values.set(m[1]!, n);
    }
    out.push({ key, values });
  }
  return out;
}
