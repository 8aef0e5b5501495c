import { Reader } from './reader.js';
import { Writer, describe } from './writer.js';

/**
 * Codec combinators: one definition of a TPM structure gives its TypeScript type
 * (`Infer<typeof X>`), its encoder and its decoder, so the two directions cannot drift.
 * Every codec also carries a `meta` description of its shape, from which tests derive
 * fast-check arbitraries and the decoder tool walks values.
 *
 * Decoding rules (as tpm2-tss's MU layer): the reader's offset only advances on success;
 * a TPM2B wrapping a structure is consumed exactly; unknown union selectors are errors;
 * list counts are capped before anything is allocated.
 */
export interface Codec<T> {
  readonly meta: Meta;
  /** `ctx` is the enclosing struct's fields decoded/being encoded so far (for unions). */
  encode(w: Writer, v: T, ctx?: Record<string, unknown>): void;
  decode(r: Reader, ctx?: Record<string, unknown>): T;
}

export type Meta =
  | { kind: 'u8' | 'u16' | 'u32' | 'u64' | 'i32'; name?: string }
  | { kind: 'fixed'; length: number }
  | { kind: 'tpm2b'; name: string; max: number; sizeBytes: 1 | 2 }
  | { kind: 'sized'; name: string; inner: Codec<any> }
  | { kind: 'list'; name: string; item: Codec<any>; max: number }
  | { kind: 'struct'; name: string; fields: Record<string, Codec<any>> }
  | { kind: 'union'; name: string; selector: string; arms: Map<number, Codec<any>> }
  | { kind: 'none' }
  | { kind: 'oneOf'; base: Codec<number>; values: readonly number[]; name: string };

export type Infer<C> = C extends Codec<infer T> ? T : never;

/** Restores the reader offset if `fn` throws: failed decodes consume nothing. */
function atomic<T>(r: Reader, name: string | undefined, fn: () => T): T {
  const start = r.offset;
  const depth = r.path.length;
  if (name) r.path.push(name);
  try {
    const v = fn();
    // Codecs leave the path balanced on success: one pop (setting .length is far slower).
    if (name) r.path.pop();
    return v;
  } catch (e) {
    r.offset = start;
    r.path.length = depth;
    throw e;
  }
}

function named<T>(w: Writer, name: string, fn: () => T): T {
  w.path.push(name);
  const v = fn();
  w.path.pop();
  return v;
}

export const u8: Codec<number> = {
  meta: { kind: 'u8' },
  encode: (w, v) => w.u8(v),
  decode: (r) => r.u8(),
};
export const u16: Codec<number> = {
  meta: { kind: 'u16' },
  encode: (w, v) => w.u16(v),
  decode: (r) => r.u16(),
};
export const u32: Codec<number> = {
  meta: { kind: 'u32' },
  encode: (w, v) => w.u32(v),
  decode: (r) => r.u32(),
};
export const i32: Codec<number> = {
  meta: { kind: 'i32' },
  encode: (w, v) => w.i32(v),
  decode: (r) => r.i32(),
};
export const u64: Codec<bigint> = {
  meta: { kind: 'u64' },
  encode: (w, v) => w.u64(v),
  decode: (r) => r.u64(),
};

/** TPMI_YES_NO: a byte that must be 0 or 1, as a boolean. */
export const yesNo: Codec<boolean> = {
  meta: { kind: 'oneOf', base: u8, values: [0, 1], name: 'TPMI_YES_NO' },
  encode: (w, v) => {
    if (typeof v !== 'boolean') w.fail(`TPMI_YES_NO must be a boolean, got ${describe(v)}`);
    w.u8(v ? 1 : 0);
  },
  decode: (r) => {
    const at = r.offset;
    const b = r.u8();
    if (b > 1) {
      r.offset = at;
      r.fail(`TPMI_YES_NO must be 0 or 1, got ${b}`);
    }
    return b === 1;
  },
};

/** An integer type restricted to listed values (a TPMI_ interface type). */
export function oneOf(name: string, base: Codec<number>, values: readonly number[]): Codec<number> {
  const allowed = new Set(values);
  const show = (v: number) => '0x' + v.toString(16).padStart(base.meta.kind === 'u8' ? 2 : 4, '0');
  return {
    meta: { kind: 'oneOf', base, values, name },
    encode: (w, v) => {
      if (!allowed.has(v)) w.fail(`${name}: ${typeof v === 'number' ? show(v) : describe(v)} is not an allowed value`);
      base.encode(w, v);
    },
    decode: (r) => {
      const at = r.offset;
      const v = base.decode(r);
      if (!allowed.has(v)) {
        r.offset = at;
        r.fail(`${name}: ${show(v)} is not an allowed value`, at);
      }
      return v;
    },
  };
}

/** A fixed number of bytes with no size prefix. */
export function fixed(length: number): Codec<Uint8Array> {
  return {
    meta: { kind: 'fixed', length },
    encode: (w, v) => {
      if (!(v instanceof Uint8Array) || v.length !== length) {
        w.fail(`expected exactly ${length} bytes, got ${describe(v)}`);
      }
      w.bytes(v);
    },
    decode: (r) => r.bytes(length),
  };
}

/** A TPM2B of plain bytes: UINT16 size then that many bytes, at most `max`. */
export function tpm2b(name: string, max: number, sizeBytes: 1 | 2 = 2): Codec<Uint8Array> {
  return {
    meta: { kind: 'tpm2b', name, max, sizeBytes },
    encode: (w, v) =>
      named(w, name, () => {
        if (!(v instanceof Uint8Array)) w.fail(`expected bytes (Uint8Array), got ${describe(v)}`);
        if (v.length > max) w.fail(`${v.length} bytes is more than the maximum of ${max}`);
        if (sizeBytes === 1) w.u8(v.length);
        else w.u16(v.length);
        w.bytes(v);
      }),
    decode: (r) =>
      atomic(r, name, () => {
        const at = r.offset;
        const n = sizeBytes === 1 ? r.u8() : r.u16();
        if (n > max) r.fail(`size ${n} is more than the maximum of ${max}`, at);
        return r.bytes(n);
      }),
  };
}

/**
 * A TPM2B wrapping a structure (TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, ...): UINT16 size then
 * exactly that many bytes of the inner structure. A size of zero is an error: where the spec
 * allows an empty one, use `optional(sized(...))`.
 */
export function sized<T>(name: string, inner: Codec<T>): Codec<T> {
  return {
    meta: { kind: 'sized', name, inner },
    encode: (w, v) =>
      named(w, name, () => {
        const at = w.length;
        w.u16(0);
        inner.encode(w, v);
        const n = w.length - at - 2;
        if (n > 0xffff) w.fail(`structure of ${n} bytes does not fit a UINT16 size`);
        w.patchU16(at, n);
      }),
    decode: (r) =>
      atomic(r, name, () => {
        const at = r.offset;
        const n = r.u16();
        if (n === 0) r.fail('size is 0 but a structure is required', at);
        return r.exactly(n, name, (sub) => inner.decode(sub));
      }),
  };
}

/**
 * A TPML: UINT32 count then that many items, count capped at `max` before anything is
 * allocated (a forged count must not make us loop or allocate for billions of items).
 */
export function list<T>(name: string, item: Codec<T>, max: number): Codec<T[]> {
  return {
    meta: { kind: 'list', name, item, max },
    encode: (w, v) =>
      named(w, name, () => {
        if (!Array.isArray(v)) w.fail(`expected an array, got ${describe(v)}`);
        if (v.length > max) w.fail(`${v.length} items is more than the maximum of ${max}`);
        w.u32(v.length);
        v.forEach((x, i) => named(w, `[${i}]`, () => item.encode(w, x)));
      }),
    decode: (r) =>
      atomic(r, name, () => {
        const at = r.offset;
        const n = r.u32();
        if (n > max) r.fail(`count ${n} is more than the maximum of ${max}`, at);
        // Every item takes at least one byte: a count beyond the bytes left is a lie.
        if (n > r.remaining) r.fail(`count ${n} is more than the ${r.remaining} bytes left`, at);
        const out: T[] = [];
        for (let i = 0; i < n; i++) {
          r.path.push(`[${i}]`);
          out.push(item.decode(r));
          r.path.pop();
        }
        return out;
      }),
  };
}

type StructValue<F extends Record<string, Codec<any>>> = { [K in keyof F]: Infer<F[K]> };

/** A TPMS/TPMT structure: fields in order; unions among them see the fields before them. */
export function struct<F extends Record<string, Codec<any>>>(name: string, fields: F): Codec<StructValue<F>> {
  const entries = Object.entries(fields);
  const keys = entries.map(([k]) => k);
  const codecs = entries.map(([, c]) => c);
  return {
    meta: { kind: 'struct', name, fields },
    encode: (w, v) =>
      named(w, name, () => {
        if (typeof v !== 'object' || v === null) w.fail(`expected an object, got ${describe(v)}`);
        const obj = v as Record<string, unknown>;
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i]!;
          w.path.push(k);
          if (!(k in obj)) w.fail('missing field');
          codecs[i]!.encode(w, obj[k], obj);
          w.path.pop();
        }
      }),
    decode: (r) =>
      atomic(r, name, () => {
        const out: Record<string, unknown> = {};
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i]!;
          r.path.push(k);
          out[k] = codecs[i]!.decode(r, out);
          r.path.pop();
        }
        return out as StructValue<F>;
      }),
  };
}

/** Empty arm of a union (TPMS_EMPTY, or a NULL selector): no bytes, the value `null`. */
export const none: Codec<null> = {
  meta: { kind: 'none' },
  encode: (w, v) => {
    if (v !== null && v !== undefined) w.fail(`expected no value for this selector, got ${describe(v)}`);
  },
  decode: () => null,
};

type ArmValues<A extends Record<number, Codec<any>>> = { [K in keyof A]: Infer<A[K]> }[keyof A];

/**
 * A TPMU: which arm is present is chosen by an earlier field of the enclosing structure
 * (`selector`). A selector with no arm is an error in both directions.
 */
export function union<A extends Record<number, Codec<any>>>(name: string, selector: string, arms: A): Codec<ArmValues<A>> {
  const map = new Map<number, Codec<any>>(Object.entries(arms).map(([k, c]) => [Number(k), c]));
  const pick = (ctx: Record<string, unknown> | undefined, fail: (m: string) => never): Codec<any> => {
    const sel = ctx?.[selector];
    if (typeof sel !== 'number') return fail(`selector ${selector} is missing`);
    const arm = map.get(sel);
    if (!arm) return fail(`unknown selector ${selector}=0x${sel.toString(16).padStart(4, '0')}`);
    return arm;
  };
  return {
    meta: { kind: 'union', name, selector, arms: map },
    encode: (w, v, ctx) => named(w, name, () => pick(ctx, (m) => w.fail(m)).encode(w, v)),
    decode: (r, ctx) =>
      atomic(r, name, () => {
        // Point the error at the selector's own bytes is not possible from here; the path names it.
        const arm = pick(ctx, (m) => r.fail(m));
        return arm.decode(r);
      }),
  };
}

/** Marshals a value into a fresh byte array. */
export function encode<T>(codec: Codec<T>, v: T): Uint8Array {
  const w = new Writer();
  codec.encode(w, v);
  return w.finish();
}

/** Unmarshals exactly the whole of `bytes`: trailing bytes are an error. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  const v = codec.decode(r);
  if (r.remaining !== 0) r.fail(`${r.remaining} trailing byte${r.remaining === 1 ? '' : 's'} after the structure`);
  return v;
}
