/**
 * The shape every codec has (codec.ts builds them, compile.ts compiles them): its own file, so
 * that the compiler can name it without importing the combinators.
 */
import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

export interface Codec<T> {
  readonly meta: Meta;
  /** `ctx` is the enclosing struct's fields decoded/being encoded so far (for unions). */
  encode(w: Writer, v: T, ctx?: Record<string, unknown>): void;
  decode(r: Reader, ctx?: Record<string, unknown>): T;
}

/**
 * Any codec, whatever it encodes. (`encode` is a method, so its parameter is bivariant and a
 * `Codec<number>` is a `Codec<unknown>`: code that walks `meta` needs no `any`.)
 */
export type AnyCodec = Codec<unknown>;

/**
 * What an integer leaf means, by its Part 2 type name: 'TPM_ALG_ID', 'TPM_HANDLE', 'TPM_ST',
 * 'TPM_CAP', 'TPM_ECC_CURVE', 'TPM_SE', 'TPM_SU', 'TPMA_OBJECT', 'TPMA_SESSION', 'TPMA_CC'.
 * A bare `u16` has none: it is just a number (a size, a count, a key length).
 */
export type LeafName = string;

export type Meta =
  | { kind: 'u8' | 'u16' | 'u32' | 'u64' | 'i32'; name?: LeafName }
  | { kind: 'fixed'; length: number }
  | { kind: 'tpm2b'; name: string; max: number; sizeBytes: 1 | 2 }
  | { kind: 'sized'; name: string; inner: AnyCodec }
  | { kind: 'list'; name: string; item: AnyCodec; max: number }
  | { kind: 'struct'; name: string; fields: Readonly<Record<string, AnyCodec>> }
  | { kind: 'union'; name: string; selector: string; arms: ReadonlyMap<number, AnyCodec> }
  | { kind: 'none' }
  | { kind: 'oneOf'; base: Codec<number>; values: readonly number[]; name: string };

/** The interpreted functions of a combinator-built codec (methods: bivariant, as Codec's). */
export interface Reference<T = unknown> {
  encode(w: Writer, v: T, ctx?: Record<string, unknown>): void;
  decode(r: Reader, ctx?: Record<string, unknown>): T;
  /** TPMI_YES_NO: a oneOf over u8 whose value is a boolean. */
  readonly boolean?: true;
}
