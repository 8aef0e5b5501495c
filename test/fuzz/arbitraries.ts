/**
 * fast-check arbitraries derived from any codec by walking its `meta`, so every structure and
 * command gets a generator without a hand-written one that could drift from the codec.
 *
 * Unions: a union's arm is chosen by a sibling field of the enclosing struct (its selector), so
 * the struct picks the selector's value first — from the arm keys every union on that selector
 * has (TPMT_PUBLIC's `type` drives both `parameters` and `unique`), and that the selector's own
 * codec allows — then generates each union from that arm.
 */
import fc from 'fast-check';
import { yesNo, type AnyCodec, type Codec } from '../../src/tpm/wire/codec.js';
import type { AuthResponse, Authorization, CommandDescriptor } from '../../src/tpm/command.js';

export interface ArbOptions {
  /** Largest byte string generated for a TPM2B, besides the occasional exactly-max one. */
  maxBytes?: number;
  /** Largest TPML generated. */
  maxItems?: number;
}

const DEFAULTS: Required<ArbOptions> = { maxBytes: 40, maxItems: 3 };
const cache = new WeakMap<AnyCodec, fc.Arbitrary<unknown>>();

function bytesUpTo(max: number, o: Required<ArbOptions>): fc.Arbitrary<Uint8Array> {
  const small = fc.uint8Array({ maxLength: Math.min(max, o.maxBytes) });
  if (max <= o.maxBytes) return small;
  // Now and then exactly the maximum, where off-by-one bugs live.
  return fc.oneof({ arbitrary: small, weight: 12 }, { arbitrary: fc.uint8Array({ minLength: max, maxLength: max }), weight: 1 });
}

/** An arbitrary of the values `codec` encodes. */
export function arbitraryOf<T>(codec: Codec<T>, options: ArbOptions = {}): fc.Arbitrary<T> {
  const useCache = options.maxBytes === undefined && options.maxItems === undefined;
  // Built from the codec's meta, so it yields what the codec encodes: T (the one cast here).
  const arb = (useCache ? cache.get(codec) : undefined) ?? build(codec, { ...DEFAULTS, ...options });
  if (useCache) cache.set(codec, arb);
  return arb as fc.Arbitrary<T>;
}

function build(codec: AnyCodec, o: Required<ArbOptions>): fc.Arbitrary<unknown> {
  const sub = (c: AnyCodec) => (o === DEFAULTS ? arbitraryOf(c) : build(c, o));
  const m = codec.meta;
  switch (m.kind) {
    case 'u8':
      return fc.integer({ min: 0, max: 0xff });
    case 'u16':
      return fc.integer({ min: 0, max: 0xffff });
    case 'u32':
      return fc.integer({ min: 0, max: 0xffffffff });
    case 'i32':
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case 'u64':
      return fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
    case 'fixed':
      return fc.uint8Array({ minLength: m.length, maxLength: m.length });
    case 'tpm2b':
      return bytesUpTo(m.max, o);
    case 'none':
      return fc.constant(null);
    case 'sized':
      return sub(m.inner);
    case 'oneOf':
      // TPMI_YES_NO is the one interface type whose values are booleans, not its wire numbers.
      if (codec === yesNo || m.name === 'TPMI_YES_NO') return fc.boolean();
      return fc.constantFrom(...m.values);
    case 'list':
      return fc.array(sub(m.item), { maxLength: Math.min(m.max, o.maxItems) });
    case 'union':
      // Alone, a union has no selector to agree with; any arm's value will do.
      return fc.oneof(...[...m.arms.values()].map(sub));
    case 'struct':
      return structArb(m.name, m.fields, o, sub);
  }
}

function structArb(
  name: string,
  fields: Record<string, AnyCodec>,
  o: Required<ArbOptions>,
  sub: (c: AnyCodec) => fc.Arbitrary<unknown>,
): fc.Arbitrary<Record<string, unknown>> {
  // selector field → arm keys allowed by every union it drives and by its own codec.
  const selectors = new Map<string, number[]>();
  for (const c of Object.values(fields)) {
    const m = c.meta;
    if (m.kind !== 'union') continue;
    if (!(m.selector in fields)) throw new Error(`${name}: union ${m.name} selects on ${m.selector}, which is not a field of ${name}`);
    const keys = [...m.arms.keys()];
    const prev = selectors.get(m.selector);
    selectors.set(m.selector, prev ? prev.filter((k) => keys.includes(k)) : keys);
  }
  for (const [s, keys] of selectors) {
    const sm = fields[s]!.meta;
    const allowed = sm.kind === 'oneOf' ? keys.filter((k) => sm.values.includes(k)) : keys;
    if (allowed.length === 0) throw new Error(`${name}: no value of ${s} selects an arm of every union on it`);
    selectors.set(s, allowed);
  }
  if (selectors.size === 0) {
    return fc.record(Object.fromEntries(Object.entries(fields).map(([k, c]) => [k, sub(c)])), { noNullPrototype: true }) as fc.Arbitrary<
      Record<string, unknown>
    >;
  }
  const choice = fc.record(Object.fromEntries([...selectors].map(([s, keys]) => [s, fc.constantFrom(...keys)])), { noNullPrototype: true });
  return choice.chain((picked) => {
    const parts: Record<string, fc.Arbitrary<unknown>> = {};
    for (const [k, c] of Object.entries(fields)) {
      const m = c.meta;
      if (k in picked) parts[k] = fc.constant(picked[k]);
      else if (m.kind === 'union') parts[k] = sub(m.arms.get(picked[m.selector] as number)!);
      else parts[k] = sub(c);
    }
    return fc.record(parts, { noNullPrototype: true });
  });
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const digestish = fc.uint8Array({ maxLength: 64 });

/** TPMS_AUTH_COMMAND without an HMAC to compute (the bytes given are sent as they are). */
export const authorizationArb: fc.Arbitrary<Authorization> = fc.record({ sessionHandle: u32, nonceCaller: digestish, sessionAttributes: u8, hmac: digestish }, { noNullPrototype: true });

/** TPMS_AUTH_RESPONSE. */
export const authResponseArb: fc.Arbitrary<AuthResponse> = fc.record({ nonceTPM: digestish, sessionAttributes: u8, hmac: digestish }, { noNullPrototype: true });

/** A command's input (its handles by name plus its parameters) and an authorization per auth handle. */
export function commandInputArb(cmd: CommandDescriptor) {
  const handles = Object.fromEntries(cmd.handles.map((h) => [h.name, u32]));
  const auths = Object.fromEntries(cmd.handles.filter((h) => h.auth === 'auth').map((h) => [h.name, authorizationArb]));
  return fc.record({
    handles: fc.record(handles, { noNullPrototype: true }),
    params: arbitraryOf(cmd.params),
    auths: fc.record(auths, { noNullPrototype: true }),
  }, { noNullPrototype: true });
}

/** A successful response's output (handles + parameters) and 0..3 auth responses. */
export function responseOutputArb(cmd: CommandDescriptor) {
  const handles = Object.fromEntries(cmd.responseHandles.map((h) => [h, u32]));
  return fc.record({
    handles: fc.record(handles, { noNullPrototype: true }),
    params: arbitraryOf(cmd.response),
    auths: fc.array(authResponseArb, { maxLength: 3 }),
  }, { noNullPrototype: true });
}

/**
 * Run count for a property: the default keeps the whole fuzz suite to seconds on a 2-core CI
 * machine; FUZZ_SCALE=50 (say) runs 50 times as many cases for a longer local hunt.
 */
export function runs(n: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round(n * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}
