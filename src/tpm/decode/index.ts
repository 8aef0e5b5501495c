/**
 * The decoder library behind `tpm2-decode`: TPM command/response frames and single structures
 * to annotated, JSON-able views and back. Decoding only ever throws TpmDecodeError.
 */
import { TpmDecodeError } from '../wire/errors.js';
import {
  decodeCommandFrame,
  decodeResponseFrame,
  decodeStructure,
  encodeCommandFrame,
  encodeResponseFrame,
  encodeStructure,
} from './frames.js';

export {
  decodeCommandFrame,
  decodeResponseFrame,
  decodeStructure,
  encodeCommandFrame,
  encodeResponseFrame,
  encodeStructure,
  lookupCommand,
  lookupStructure,
  type CommandFrameView,
  type CommandSessionView,
  type ResponseErrorView,
  type ResponseFrameView,
  type ResponseSessionView,
  type StructureView,
} from './frames.js';
export { toView, fromView } from './view.js';
import { isRecord } from './view.js';

/**
 * Makes a view JSON-able: Uint8Array → lowercase hex, bigint → decimal string; undefined
 * members are dropped. Everything else is copied as is.
 */
export function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  if (typeof value === 'bigint') return value.toString(10);
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v);
    return out;
  }
  return value;
}

/**
 * Bytes from hex text as people paste it: whitespace anywhere, an optional leading 0x, either
 * case. Throws TpmDecodeError (offset = position in the text) for anything else.
 */
export function parseHex(text: string): Uint8Array {
  let s = text.replace(/\s+/g, '');
  if (/^0x/i.test(s)) s = s.slice(2);
  if (s.length === 0) throw new TpmDecodeError('no hex digits given', 'input', 0);
  const bad = s.search(/[^0-9a-fA-F]/);
  if (bad >= 0) throw new TpmDecodeError(`not hex: unexpected character ${JSON.stringify(s[bad])} at position ${bad}`, 'input', bad);
  if (s.length % 2 !== 0) throw new TpmDecodeError(`odd number of hex digits (${s.length})`, 'input', s.length);
  return Uint8Array.from(Buffer.from(s, 'hex'));
}

export interface RoundtripReport {
  identical: boolean;
  /** Length of the original bytes. */
  size: number;
  /** When not identical: the re-encoded bytes (or why re-encoding failed) and the first differing offset. */
  reencoded?: Uint8Array;
  firstDifference?: number;
  error?: string;
}

/**
 * Re-encodes a view after a trip through JSON (what the tool prints), so `identical` proves the
 * printed form loses nothing.
 */
export function roundtrip(kind: 'command' | 'response' | 'structure', view: unknown, original: Uint8Array): RoundtripReport {
  let again: Uint8Array;
  try {
    const json: unknown = JSON.parse(JSON.stringify(toJson(view)));
    if (!isRecord(json)) throw new TpmDecodeError('the view is not an object', 'view', 0);
    again = kind === 'command' ? encodeCommandFrame(json) : kind === 'response' ? encodeResponseFrame(json) : encodeStructure(json);
  } catch (e) {
    return { identical: false, size: original.length, error: e instanceof Error ? e.message : String(e) };
  }
  const n = Math.min(again.length, original.length);
  let i = 0;
  while (i < n && again[i] === original[i]) i++;
  if (i === again.length && i === original.length) return { identical: true, size: original.length };
  return { identical: false, size: original.length, reencoded: again, firstDifference: i };
}

/** Convenience: decode a command frame from hex. */
export function decodeCommandHex(hex: string) {
  return decodeCommandFrame(parseHex(hex));
}

/** Convenience: decode a response frame from hex. */
export function decodeResponseHex(hex: string, commandCode: number | string, sessionCount?: number) {
  return decodeResponseFrame(parseHex(hex), commandCode, sessionCount);
}

/** Convenience: decode a named structure from hex. */
export function decodeStructureHex(name: string, hex: string) {
  return decodeStructure(name, parseHex(hex));
}
