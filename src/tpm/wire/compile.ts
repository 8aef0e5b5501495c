/**
 * Compiled codecs: each structure's encoder and decoder generated once, on its second use, as
 * straight-line JavaScript (`new Function`, as ajv and protobufjs do) from the codec's `meta`.
 *
 * The interpreted combinators in codec.ts stay the reference: every check here is theirs (sizes,
 * selectors, bounds, counts, trailing bytes), with the same error class, message, path and byte
 * offset, and a failed decode leaves the reader where it was. What the generated code saves is
 * the interpretation: no closure or try/finally per level, no path push/pop on success (the path
 * of an error is written into the code that throws it), one local offset for the whole structure.
 *
 * A codec not built by the combinators (a hand-written one, such as TPMS_AUTH_COMMAND) is called
 * through its own methods from the generated code, with the reader/writer path set as the
 * interpreted codec would have it. If code generation is refused (`--disallow-code-generation-
 * from-strings`), the codec keeps its interpreted functions.
 *
 * compileFrames does the same for a command's whole frames (header, handles, authorization
 * area, parameters: generate-frame.ts), used by ../command from a descriptor's TIER_UP-th use.
 * Decoded byte fields are copies, never views of the frame (the caller keeps its frame; copies of
 * more than 64 bytes lie in slab memory, slab.ts) — except from the response decoder of
 * compileOwnedResponse, for a frame its caller owns (../command: the executor, when the Transport
 * promises fresh responses): then they are views into that frame.
 */
import { TpmDecodeError, TpmEncodeError } from './errors.js';
import { Reader } from './reader.js';
import { describe, type Writer } from './writer.js';
import type { AnyCodec, Codec, Meta, Reference } from './types.js';
import { DecodeGen } from './generate-decode.js';
import { EncodeGen } from './generate-encode.js';
import { FrameDecodeGen, FrameEncodeGen, type AuthFields, type FrameShape } from './generate-frame.js';

/** Each codec paired with reference functions of its own T (`set` allows no other pairing). */
interface Registry {
  get<T>(c: Codec<T>): Reference<T> | undefined;
  set<T>(c: Codec<T>, ref: Reference<T>): void;
}
// The map's own type cannot say "a codec's reference has that codec's T": Registry says it, and
// `never` lets the untyped storage stand behind it.
const REFERENCE: Registry = new WeakMap<object, never>();

/** Records the interpreted functions of a codec built by the combinators (codec.ts). */
export function register<T>(c: Codec<T>, ref: Reference<T>): void {
  REFERENCE.set(c, ref);
}

/** The interpreted functions of a combinator-built codec; undefined for a hand-written one. */
const referenceOf = (c: AnyCodec): Reference | undefined => REFERENCE.get(c);

/** The reference functions of `c`: its interpreted ones, or its own methods if hand-written. */
export function reference<T>(c: Codec<T>): Reference<T> {
  return REFERENCE.get(c) ?? c;
}

/**
 * The interpreted codec of `c` (tests compare it with the compiled one): the same meta, and
 * the reference functions all the way down.
 */
export function interpreted<T>(c: Codec<T>): Codec<T> {
  const ref = reference(c);
  return { meta: c.meta, encode: ref.encode, decode: ref.decode };
}

/**
 * Calls a codec's method runs interpreted before it is compiled. Generating and compiling a
 * structure's code costs about a millisecond: a process that marshals a structure once (a tool
 * decoding one blob) never pays it, anything that does it again gets the compiled code.
 */
export const TIER_UP = 2;

/**
 * A codec whose methods compile themselves on their TIER_UP-th call and then replace themselves
 * with the compiled functions (the object keeps its shape: the same three properties).
 */
export function lazyCodec<T, M extends Meta>(meta: M, ref: Reference<T>): Codec<T> & { readonly meta: M } {
  // Kept here too, so that a copy of the stub (`{ ...codec }`) or a frozen codec compiles once.
  let enc: Reference<T>['encode'] | undefined;
  let dec: Reference<T>['decode'] | undefined;
  let encodes = 0;
  let decodes = 0;
  const c: Codec<T> & { readonly meta: M } = {
    meta,
    encode(w, v, ctx) {
      if (enc === undefined && ++encodes < TIER_UP) return ref.encode(w, v, ctx);
      enc ??= compileEncoder(c, ref);
      Reflect.set(c, 'encode', enc);
      enc(w, v, ctx);
    },
    decode(r, ctx) {
      if (dec === undefined && ++decodes < TIER_UP) return ref.decode(r, ctx);
      dec ??= compileDecoder(c, ref);
      Reflect.set(c, 'decode', dec);
      return dec(r, ctx);
    },
  };
  register(c, ref);
  return c;
}

/** The generated source of a codec (for tests and the curious). */
export function generatedSource(c: AnyCodec, direction: 'encode' | 'decode'): string {
  return direction === 'encode' ? new EncodeGen(referenceOf).encoderBody(c) : new DecodeGen(referenceOf).decoderBody(c);
}

// The generated functions encode and decode what `c`'s meta describes: its T (new Function's
// result is untyped).
function compileEncoder<T>(c: Codec<T>, fallback: Reference<T>): Reference<T>['encode'] {
  const g = new EncodeGen(referenceOf);
  try {
    const body = g.encoderBody(c);
    return new Function('K', 'describe', 'E', body)(g.consts, describe, encodeError);
  } catch (e) {
    if (e instanceof EvalError) return fallback.encode; // code generation disallowed
    throw e;
  }
}

function compileDecoder<T>(c: Codec<T>, fallback: Reference<T>): Reference<T>['decode'] {
  const g = new DecodeGen(referenceOf);
  try {
    const body = g.decoderBody(c);
    return new Function('K', 'Reader', 'D', body)(g.consts, Reader, decodeError);
  } catch (e) {
    if (e instanceof EvalError) return fallback.decode;
    throw e;
  }
}

/** The errors of the generated code: the path is the one at entry followed by `segs`. */
function decodeError(r: { readonly path: readonly string[] }, segs: readonly string[], reason: string, at: number): TpmDecodeError {
  return new TpmDecodeError(reason, r.path.concat(segs).join('.'), at);
}
function encodeError(w: { readonly path: readonly string[] }, segs: readonly string[], reason: string): TpmEncodeError {
  return new TpmEncodeError(reason, w.path.concat(segs).join('.'));
}


/** A command's whole frames as generated functions (generate-frame.ts); each undefined if not compiled. */
export interface CompiledFrames {
  /** Command frame into the empty writer `w`: `count` entries `auths[names[i]] ?? empty`. */
  command?: (w: Writer, input: unknown, auths: Record<string, unknown>, names: readonly string[], count: number, empty: unknown) => void;
  /** Response frame into the empty writer `w`. */
  response?: (w: Writer, output: unknown, auths: unknown) => void;
  decodeCommand?: (frame: Uint8Array) => unknown;
  decodeResponse?: (frame: Uint8Array, sessions: number) => { output: unknown; auths: unknown[] };
}

/** What the frame code calls that lives above the wire layer (../command). */
export interface FrameRuntime {
  handleOf(h: unknown): number;
  hex32(n: number): string;
  /** The error of a response with a non-zero response code. */
  tpmError(rc: number): Error;
}

/**
 * Compiles a command's four frame functions; a direction whose structures are not all
 * combinator-built, or any when code generation is refused, stays undefined.
 */
export function compileFrames(cmd: FrameShape, auth: AuthFields, rt: FrameRuntime): CompiledFrames {
  const out: CompiledFrames = {};
  const gen = <F>(make: () => F | undefined): F | undefined => {
    try {
      return make();
    } catch (e) {
      if (e instanceof EvalError) return undefined;
      throw e;
    }
  };
  out.command = gen(() => {
    const g = new FrameEncodeGen(referenceOf, auth);
    const body = g.commandBody(cmd);
    if (body === undefined) return undefined;
    g.consts[0] = rt.handleOf;
    return new Function('K', 'describe', 'E', `return function encodeCommand(w, input, auths, names, count, EMPTY) {\n${body}\n};`)(g.consts, describe, encodeError);
  });
  out.response = gen(() => {
    const g = new FrameEncodeGen(referenceOf, auth);
    const body = g.responseBody(cmd);
    if (body === undefined) return undefined;
    return new Function('K', 'describe', 'E', `return function encodeResponse(w, output, auths) {\n${body}\n};`)(g.consts, describe, encodeError);
  });
  out.decodeCommand = gen(() => {
    const g = new FrameDecodeGen(referenceOf, auth);
    const body = g.commandBody(cmd);
    if (body === undefined) return undefined;
    g.consts[0] = rt.hex32;
    return new Function('K', 'D', 'r', `return function decodeCommand(f) {\n${body}\n};`)(g.consts, decodeError, { path: [`${cmd.name} command`] });
  });
  out.decodeResponse = gen(() => responseDecoder(cmd, auth, rt, false));
  return out;
}

/**
 * The response decoder of compileFrames whose byte fields are views into the frame: only for a
 * frame nobody writes to afterwards. Undefined when not compiled (as compileFrames).
 */
export function compileOwnedResponse(cmd: FrameShape, auth: AuthFields, rt: FrameRuntime): CompiledFrames['decodeResponse'] {
  try {
    return responseDecoder(cmd, auth, rt, true);
  } catch (e) {
    if (e instanceof EvalError) return undefined;
    throw e;
  }
}

/** A response frame decoder; `views`: byte fields as views into the frame (DecodeGen.views). */
function responseDecoder(cmd: FrameShape, auth: AuthFields, rt: FrameRuntime, views: boolean): CompiledFrames['decodeResponse'] {
  const g = new FrameDecodeGen(referenceOf, auth, views);
  const body = g.responseBody(cmd);
  if (body === undefined) return undefined;
  g.consts[0] = rt.tpmError;
  const name = views ? 'decodeOwnedResponse' : 'decodeResponse';
  return new Function('K', 'D', 'r', `return function ${name}(f, n) {\n${body}\n};`)(g.consts, decodeError, { path: [`${cmd.name} response`] });
}

/** The generated source of a command's frame function (for tests and the curious). */
export function generatedFrameSource(cmd: FrameShape, auth: AuthFields, which: 'command' | 'response' | 'decodeCommand' | 'decodeResponse'): string | undefined {
  if (which === 'command') return new FrameEncodeGen(referenceOf, auth).commandBody(cmd);
  if (which === 'response') return new FrameEncodeGen(referenceOf, auth).responseBody(cmd);
  if (which === 'decodeCommand') return new FrameDecodeGen(referenceOf, auth).commandBody(cmd);
  return new FrameDecodeGen(referenceOf, auth).responseBody(cmd);
}
