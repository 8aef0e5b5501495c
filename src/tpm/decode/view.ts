/**
 * A decoded value ⇄ its annotated view, walking the codec's `meta`.
 *
 * The view is what the decoder tool prints: the same shape as the value (struct fields in wire
 * order, a union as its selected arm, a TPML as an array), with handles and attribute words as
 * "0x%08x" strings and a sibling `<field>Name` / `<field>Flags` text for algorithm IDs, tags,
 * handles and attributes. Byte strings stay Uint8Array and UINT64 stays bigint until `toJson`.
 *
 * `fromView` reads such a view back — or its JSON form (hex strings, decimal strings) — into a
 * value the codec encodes; annotation siblings are ignored, so a view survives JSON.stringify
 * and JSON.parse without losing a bit (which `--roundtrip` checks).
 */
import type { AnyCodec, Meta } from '../wire/codec.js';
import { TpmDecodeError, TpmEncodeError } from '../wire/errors.js';
import { annotationFor, hex32, type Annotation } from './names.js';

export type View = unknown;

/** A decoded structure or a parsed JSON object (not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Renders one integer with its annotation into `out[field]` (and the sibling text). */
function putNumber(out: Record<string, unknown>, field: string, v: number, a: Annotation | undefined, taken: ReadonlySet<string>): void {
  out[field] = a?.hex32 ? hex32(v) : v;
  if (a?.label && a.suffix) {
    const key = field + a.suffix;
    const text = a.label(v);
    // A real field of the same name wins over an annotation.
    if (text !== undefined && !taken.has(key)) out[key] = text;
  }
}

const isInt = (m: Meta) => m.kind === 'u8' || m.kind === 'u16' || m.kind === 'u32' || m.kind === 'i32' || m.kind === 'oneOf';

/** The codec that actually encodes a field: a union's selected arm, a sized TPM2B's inner. */
function effective(codec: AnyCodec, parent: Record<string, unknown> | undefined): AnyCodec | undefined {
  const m = codec.meta;
  if (m.kind === 'union') {
    const sel = parent?.[m.selector];
    const arm = typeof sel === 'number' ? m.arms.get(sel) : undefined;
    return arm && effective(arm, parent);
  }
  if (m.kind === 'sized') return effective(m.inner, parent);
  return codec;
}

/** The view of `value`, decoded by (or valid for) `codec`. */
export function toView(codec: AnyCodec, value: unknown, parent?: Record<string, unknown>): View {
  const c = effective(codec, parent);
  if (!c) return value;
  const m = c.meta;
  if (m.kind === 'struct' && isRecord(value)) {
    const v = value;
    const out: Record<string, unknown> = {};
    const taken = new Set(Object.keys(m.fields));
    for (const [k, fc] of Object.entries(m.fields)) {
      const e = effective(fc, v);
      const x = v[k];
      if (e && isInt(e.meta) && typeof x === 'number') {
        putNumber(out, k, x, annotationFor(e), taken);
        continue;
      }
      out[k] = toView(fc, x, v);
      const labels = e && Array.isArray(x) ? listLabels(e, x) : undefined;
      if (labels && !taken.has(k + 'Names')) out[k + 'Names'] = labels;
    }
    return out;
  }
  if (m.kind === 'list' && Array.isArray(value)) {
    const items: unknown[] = value;
    if (isInt(m.item.meta)) {
      const a = annotationFor(m.item);
      return a?.hex32 ? items.map((x) => (typeof x === 'number' ? hex32(x) : x)) : items;
    }
    return items.map((x) => toView(m.item, x));
  }
  return value;
}

/** The view of a structure's value (command parameters, a response): an object. */
export function toRecordView(codec: AnyCodec, value: unknown): Record<string, unknown> {
  const v = toView(codec, value);
  // Only struct codecs come here (descriptors' parameter and response codecs).
  if (!isRecord(v)) throw new TpmDecodeError(`a ${codec.meta.kind} is not a structure`, 'view', 0);
  return v;
}

/** A structure's value read back from its view (`fromView` of a struct codec): an object. */
export function fromRecordView(codec: AnyCodec, view: unknown, path: string[]): Record<string, unknown> {
  const v = fromView(codec, view, path);
  if (!isRecord(v)) return fail(path, 'expected an object');
  return v;
}

/** Names of the integer items of a TPML that has a table (curves, handles, commands). */
function listLabels(codec: AnyCodec, items: unknown[]): (string | null)[] | undefined {
  const m = codec.meta;
  if (m.kind !== 'list' || !isInt(m.item.meta)) return undefined;
  const a = annotationFor(m.item);
  if (!a?.label) return undefined;
  return items.map((x) => (typeof x === 'number' ? (a.label!(x) ?? null) : null));
}

function fail(path: string[], reason: string): never {
  throw new TpmEncodeError(reason, path.join('.'));
}

/** An integer from a number, a "0x.." hex string or a decimal string. */
export function parseInteger(v: unknown, path: string[]): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^0x[0-9a-f]+$/i.test(s)) return Number.parseInt(s.slice(2), 16);
    if (/^-?[0-9]+$/.test(s)) return Number.parseInt(s, 10);
  }
  return fail(path, `expected an integer (number or "0x..." string), got ${JSON.stringify(v)}`);
}

/** Bytes from a Uint8Array or a hex string. */
export function parseBytes(v: unknown, path: string[]): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string' && /^([0-9a-f]{2})*$/i.test(v)) return Uint8Array.from(Buffer.from(v, 'hex'));
  return fail(path, `expected bytes as an even-length hex string, got ${JSON.stringify(v)}`);
}

/** The value `codec` encodes, read back from a view or its JSON form. */
export function fromView(codec: AnyCodec, view: unknown, path: string[] = [], parent?: Record<string, unknown>): unknown {
  const m = codec.meta;
  switch (m.kind) {
    case 'u8':
    case 'u16':
    case 'u32':
    case 'i32':
      return parseInteger(view, path);
    case 'u64':
      if (typeof view === 'bigint') return view;
      if (typeof view === 'number' && Number.isSafeInteger(view)) return BigInt(view);
      if (typeof view === 'string' && /^[0-9]+$/.test(view)) return BigInt(view);
      return fail(path, `expected a UINT64 as a decimal string, got ${JSON.stringify(view)}`);
    case 'oneOf':
      // TPMI_YES_NO is a boolean in values; the other interface types are numbers.
      if (typeof view === 'boolean') return view;
      return parseInteger(view, path);
    case 'fixed':
    case 'tpm2b':
      return parseBytes(view, path);
    case 'none':
      return null;
    case 'sized':
      return fromView(m.inner, view, path, parent);
    case 'list': {
      if (!Array.isArray(view)) return fail(path, 'expected an array');
      return view.map((x, i) => fromView(m.item, x, [...path, `[${i}]`]));
    }
    case 'struct': {
      if (!isRecord(view)) return fail(path, 'expected an object');
      const src = view;
      const out: Record<string, unknown> = {};
      for (const [k, c] of Object.entries(m.fields)) {
        if (!(k in src)) return fail([...path, k], 'missing field');
        out[k] = fromView(c, src[k], [...path, k], out);
      }
      return out;
    }
    case 'union': {
      const sel = parent?.[m.selector];
      const arm = typeof sel === 'number' ? m.arms.get(sel) : undefined;
      if (!arm) return fail(path, `no arm of ${m.name} for ${m.selector}=${String(sel)}`);
      return fromView(arm, view, path, parent);
    }
  }
}
