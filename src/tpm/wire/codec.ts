import { Reader } from './reader.js';
import { Writer, describe } from './writer.js';
import { lazyCodec, reference, register } from './compile.js';
import type { AnyCodec, Codec, LeafName, Meta, Reference } from './types.js';

/**
 * Codec combinators: one definition of a TPM structure gives its TypeScript type
 * (`Infer<typeof X>`), its encoder and its decoder, so the two directions cannot drift.
 * Every codec also carries a `meta` description of its shape, from which tests derive
 * fast-check arbitraries and the decoder tool walks values.
 *
 * Types follow the spec's: `oneOf` keeps its values' literal types (TPMI_ALG_HASH is a union of
 * hash ids), `leaf` names what an integer is (TPM_ALG_ID, TPM_HANDLE, TPMA_OBJECT), and a
 * structure holding a TPMU is a `variant`, whose type is a discriminated union on its selector.
 *
 * Decoding rules (as tpm2-tss's MU layer): the reader's offset only advances on success;
 * a TPM2B wrapping a structure is consumed exactly; unknown union selectors are errors;
 * list counts are capped before anything is allocated.
 *
 * The functions written here are the reference (interpreted) codecs; what callers get runs the
 * same checks as code generated once per structure (compile.ts). Each combinator calls its
 * children's reference functions, so the interpreted path stays interpreted all the way down.
 */
export type { AnyCodec, Codec, LeafName, Meta } from './types.js';

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
for (const c of [u8, u16, u32, i32]) register(c, c);
register(u64, u64);

/**
 * An integer leaf with a meaning (`name` is its Part 2 type, e.g. 'TPM_ALG_ID'): same bytes and
 * same speed as `base`, but the decoder tool and the tests can tell an algorithm from a count.
 */
export function leaf(name: LeafName, base: Codec<number>): Codec<number> {
  const kind = base.meta.kind;
  if (kind !== 'u8' && kind !== 'u16' && kind !== 'u32' && kind !== 'i32') throw new Error(`leaf ${name}: base must be an integer codec, not ${kind}`);
  const c: Codec<number> = {
    meta: { kind, name },
    encode: base.encode,
    decode: base.decode,
  };
  register(c, c);
  return c;
}

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
register(yesNo, { encode: yesNo.encode, decode: yesNo.decode, boolean: true });

/**
 * An integer type restricted to listed values (a TPMI_ interface type). The values' literal
 * types are kept (`const V`), so the codec's type is their union: `oneOf('X', u16, [1, 4])` is a
 * `Codec<1 | 4>`, and a value outside the list is a type error as well as a wire error.
 */
export function oneOf<const V extends readonly number[]>(name: string, base: Codec<number>, values: V): Codec<V[number]> {
  const allowed = new Set<number>(values);
  const isAllowed = (v: number): v is V[number] => allowed.has(v);
  const show = (v: number) => '0x' + v.toString(16).padStart(base.meta.kind === 'u8' ? 2 : 4, '0');
  const b = reference(base);
  const c: Codec<V[number]> = {
    meta: { kind: 'oneOf', base, values, name },
    encode: (w, v) => {
      if (!allowed.has(v)) w.fail(`${name}: ${typeof v === 'number' ? show(v) : describe(v)} is not an allowed value`);
      b.encode(w, v);
    },
    decode: (r) => {
      const at = r.offset;
      const v = b.decode(r);
      if (!isAllowed(v)) {
        r.offset = at;
        return r.fail(`${name}: ${show(v)} is not an allowed value`, at);
      }
      return v;
    },
  };
  register(c, c);
  return c;
}

/** A fixed number of bytes with no size prefix. */
export function fixed(length: number): Codec<Uint8Array> {
  const c: Codec<Uint8Array> = {
    meta: { kind: 'fixed', length },
    encode: (w, v) => {
      if (!(v instanceof Uint8Array) || v.length !== length) {
        w.fail(`expected exactly ${length} bytes, got ${describe(v)}`);
      }
      w.bytes(v);
    },
    decode: (r) => r.bytes(length),
  };
  register(c, c);
  return c;
}

/** A TPM2B of plain bytes: UINT16 size then that many bytes, at most `max`. */
export function tpm2b(name: string, max: number, sizeBytes: 1 | 2 = 2): Codec<Uint8Array> {
  return lazyCodec({ kind: 'tpm2b', name, max, sizeBytes }, {
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
  });
}

/**
 * A TPM2B wrapping a structure (TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, ...): UINT16 size then
 * exactly that many bytes of the inner structure. A size of zero is an error: where the spec
 * allows an empty one, use `optional(sized(...))`.
 */
export function sized<T>(name: string, inner: Codec<T>): Codec<T> {
  const i = reference(inner);
  return lazyCodec({ kind: 'sized', name, inner }, {
    encode: (w, v) =>
      named(w, name, () => {
        const at = w.length;
        w.u16(0);
        i.encode(w, v);
        const n = w.length - at - 2;
        if (n > 0xffff) w.fail(`structure of ${n} bytes does not fit a UINT16 size`);
        w.patchU16(at, n);
      }),
    decode: (r) =>
      atomic(r, name, () => {
        const at = r.offset;
        const n = r.u16();
        if (n === 0) r.fail('size is 0 but a structure is required', at);
        return r.exactly(n, name, (sub) => i.decode(sub));
      }),
  });
}

/**
 * A TPML: UINT32 count then that many items, count capped at `max` before anything is
 * allocated (a forged count must not make us loop or allocate for billions of items).
 */
export function list<T>(name: string, item: Codec<T>, max: number): Codec<T[]> {
  const it = reference(item);
  return lazyCodec({ kind: 'list', name, item, max }, {
    encode: (w, v) =>
      named(w, name, () => {
        if (!Array.isArray(v)) w.fail(`expected an array, got ${describe(v)}`);
        if (v.length > max) w.fail(`${v.length} items is more than the maximum of ${max}`);
        w.u32(v.length);
        v.forEach((x, i) => named(w, `[${i}]`, () => it.encode(w, x)));
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
          out.push(it.decode(r));
          r.path.pop();
        }
        return out;
      }),
  });
}

type Fields = Record<string, AnyCodec>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Reads the fields of a struct in wire order into a fresh object. */
function structCodec<F extends Fields, T>(name: string, fields: F): Codec<T> {
  const entries = Object.entries(fields);
  const keys = entries.map(([k]) => k);
  const codecs = entries.map(([, c]) => reference(c));
  return lazyCodec({ kind: 'struct', name, fields }, {
    encode: (w, v) =>
      named(w, name, () => {
        if (!isObject(v)) return w.fail(`expected an object, got ${describe(v)}`);
        const obj = v;
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
        // The one place a decoded object meets its type: every field was read by its codec.
        return out as T;
      }),
  });
}

/**
 * A TPMS structure: fields in order. A structure with a union in it is a `variant` (whose
 * type narrows on the selector); `struct` refuses one, so no union decodes to a loose type.
 */
// The value type is written out (not a named alias) so editors and errors show the fields.
export function struct<F extends Fields>(name: string, fields: F): Codec<{ [K in keyof F]: Infer<F[K]> }> {
  for (const [k, c] of Object.entries(fields)) {
    if (c.meta.kind === 'union') throw new Error(`struct ${name}: field ${k} is a union (${c.meta.name}); use variant()`);
  }
  return structCodec<F, { [K in keyof F]: Infer<F[K]> }>(name, fields);
}

/** Empty arm of a union (TPMS_EMPTY, or a NULL selector): no bytes, the value `null`. */
export const none: Codec<null> = {
  meta: { kind: 'none' },
  encode: (w, v) => {
    if (v !== null && v !== undefined) w.fail(`expected no value for this selector, got ${describe(v)}`);
  },
  decode: () => null,
};
register(none, none);

/** Arms of a TPMU by selector value (numeric literal keys, as `{ [TPM_ALG.RSA]: ... }` gives). */
type Arms = { readonly [selector: number]: AnyCodec };
type ArmValues<A extends Arms> = { [K in keyof A]: Infer<A[K]> }[keyof A];

/**
 * A TPMU codec. Its meta also keeps the selector's name and the arms as given (`byKey`), which
 * let `variant` pair each selector value with its arm's type. (They live in `meta`, so every
 * codec object keeps one shape for V8: the hot encode/decode calls stay monomorphic.)
 */
export interface UnionCodec<S extends string, A extends Arms> extends Codec<ArmValues<A>> {
  readonly meta: Extract<Meta, { kind: 'union' }> & { readonly selector: S; readonly byKey: A };
}

/**
 * A TPMU: which arm is present is chosen by an earlier field of the enclosing structure
 * (`selector`). A selector with no arm is an error in both directions. Put it in a `variant`.
 */
export function union<const S extends string, A extends Arms>(name: string, selector: S, arms: A): UnionCodec<S, A> {
  const map = new Map<number, AnyCodec>(Object.entries(arms).map(([k, c]) => [Number(k), c]));
  const refs = new Map([...map].map(([k, c]) => [k, reference(c)]));
  const pick = (ctx: Record<string, unknown> | undefined, fail: (m: string) => never): Reference => {
    const sel = ctx?.[selector];
    if (typeof sel !== 'number') return fail(`selector ${selector} is missing`);
    const arm = refs.get(sel);
    if (!arm) return fail(`unknown selector ${selector}=0x${sel.toString(16).padStart(4, '0')}`);
    return arm;
  };
  return lazyCodec({ kind: 'union', name, selector, arms: map, byKey: arms }, {
    encode: (w, v, ctx) => named(w, name, () => pick(ctx, (m) => w.fail(m)).encode(w, v)),
    decode: (r, ctx) =>
      atomic(r, name, () => {
        // Point the error at the selector's own bytes is not possible from here; the path names it.
        const arm = pick(ctx, (m) => r.fail(m));
        // The arm was chosen by the selector the struct read before: the value is that arm's.
        return arm.decode(r) as ArmValues<A>;
      }),
  });
}

// ---------------------------------------------------------------- variant: a discriminated union

/** The fields of F that are unions selected by S. */
type UnionMeta<S extends string, A> = { readonly meta: { readonly selector: S; readonly byKey: A } };
type UnionKeys<F extends Fields, S extends string> = { [K in keyof F]: F[K] extends UnionMeta<S, Arms> ? K : never }[keyof F];
type ArmsOf<C> = C extends UnionMeta<string, infer A> ? A : never;
/** Selector values that have an arm in every union of F (others are refused on the wire). */
type CommonArm<F extends Fields, S extends string, V> = V extends unknown
  ? { [K in UnionKeys<F, S>]: V extends keyof ArmsOf<F[K]> ? never : K }[UnionKeys<F, S>] extends never
    ? V
    : never
  : never;
type AllArmKeys<F extends Fields, S extends string> = { [K in UnionKeys<F, S>]: keyof ArmsOf<F[K]> }[UnionKeys<F, S>];
/** The selector values a variant can hold: those its selector codec allows and all its unions have. */
type SelectorValues<F extends Fields, S extends keyof F & string> = CommonArm<F, S, Extract<AllArmKeys<F, S>, Infer<F[S]>>>;
/**
 * One member per selector value V: the selector is the literal V, each union field its arm for
 * V. (Written inline, not as a named alias, so editors and errors show the member's fields.)
 */
type Distribute<F extends Fields, S extends string, V> = V extends unknown
  ? { [K in keyof F]: K extends S ? V : F[K] extends UnionMeta<S, infer A> ? (V extends keyof A ? Infer<A[V]> : never) : Infer<F[K]> }
  : never;
/** The value type of `variant(name, selector, fields)`: narrows on `value[selector]`. */
export type VariantValue<F extends Fields, S extends keyof F & string> = Distribute<F, S, SelectorValues<F, S>>;

/**
 * A TPMT structure with unions (TPMT_PUBLIC, TPMT_SIGNATURE, ...): the same bytes as `struct`,
 * but its type is a discriminated union on `selector`, so `if (pub.type === TPM_ALG.RSA)`
 * narrows `pub.parameters` and `pub.unique` to the RSA arms without a cast.
 * Every union field must select on `selector`, which must come before it.
 */
export function variant<F extends Fields, const S extends keyof F & string>(name: string, selector: S, fields: F): Codec<VariantValue<F, S>> {
  const keys = Object.keys(fields);
  const at = keys.indexOf(selector);
  if (at < 0) throw new Error(`variant ${name}: no selector field ${selector}`);
  let unions = 0;
  keys.forEach((k, i) => {
    const m = fields[k]!.meta;
    if (m.kind !== 'union') return;
    unions++;
    if (m.selector !== selector || i < at) throw new Error(`variant ${name}: union ${k} must select on the earlier field ${selector}`);
  });
  if (unions === 0) throw new Error(`variant ${name}: no union field; use struct()`);
  return structCodec<F, VariantValue<F, S>>(name, fields);
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
