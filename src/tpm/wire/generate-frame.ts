/**
 * Whole command and response frames as straight-line code (Part 1 §18: header, handles,
 * authorization area, parameters), one function per descriptor and direction. The reference is
 * the interpreted frame code (../command/layout.ts, frames.ts, auth.ts): the same checks in the
 * same order, the same errors (message, path, offset).
 *
 * The generated decoders read the caller's frame directly (no Reader); the encoders write into a
 * Writer the caller lends them. A codec that is not combinator-built (hand-written, e.g. of a
 * user's own command) is not inlined: then `frameSource` returns undefined and the interpreted
 * frame code runs.
 */
import type { AnyCodec } from './types.js';
import { DecodeGen, PLAIN } from './generate-decode.js';
import { EncodeGen, LOCALS } from './generate-encode.js';
import { lit, num, objectLiteral, type ReferenceOf, type Seg } from './generate.js';

/** What the frame code needs of a command descriptor (../command/descriptor.ts). */
export interface FrameShape {
  readonly name: string;
  readonly code: number;
  readonly handles: readonly { readonly name: string }[];
  readonly params: AnyCodec;
  readonly responseHandles: readonly string[];
  readonly response: AnyCodec;
}

/** The fields of TPMS_AUTH_COMMAND / TPMS_AUTH_RESPONSE as codecs (auth.ts's meta). */
export interface AuthFields {
  readonly nonce: AnyCodec;
  readonly auth: AnyCodec;
  readonly u8: AnyCodec;
  readonly u32: AnyCodec;
}

const TAG_NO_SESSIONS = 0x8001;
const TAG_SESSIONS = 0x8002;
const MAX_SESSIONS = 3;

function structOf(c: AnyCodec): { name: string; fields: [string, AnyCodec][] } | undefined {
  return c.meta.kind === 'struct' ? { name: c.meta.name, fields: Object.entries(c.meta.fields) } : undefined;
}

export class FrameDecodeGen extends DecodeGen {
  constructor(
    refOf: ReferenceOf,
    private readonly authFields: AuthFields,
    /** Byte fields as views into the frame (DecodeGen.views). */
    views = false,
  ) {
    super(refOf);
    this.views = views;
  }

  /** Decodes the parameter struct's fields into variables (its own segment first, as struct does). */
  private fields(c: AnyCodec): Map<string, string> | undefined {
    const st = structOf(c);
    if (!st || this.refOf(c) === undefined) return undefined;
    const s: Seg[] = [{ name: st.name }];
    const vars = new Map<string, string>();
    for (const [k, fc] of st.fields) vars.set(k, this.dec(fc, [...s, { name: k }], { fields: new Map(vars) }, false));
    return vars;
  }

  /** One TPM2B_NONCE/TPM2B_AUTH/u8/u32 field of an auth entry at `segs`. */
  private authEntry(fields: [string, AnyCodec][], segs: Seg[]): string {
    const vars = new Map<string, string>();
    for (const [k, fc] of fields) vars.set(k, this.dec(fc, segs, null, false));
    const v = this.v('au');
    this.emit(`const ${v} = ${objectLiteral(vars)};`);
    return v;
  }

  /** The frame's bytes, offset and end; a DataView only for the INT32/UINT64 fields. */
  private finish(body: string): string | undefined {
    if (this.fallbacks > 0) return undefined;
    const dv = body.includes('dv.') ? '\nconst dv = new DataView(b.buffer, b.byteOffset, b.byteLength);' : '';
    return `const b = ${PLAIN('f')};\nlet o = 0, e = b.length;${dv}\n${body}`;
  }

  /**
   * `function (f, n)`: decodes response frame f of a command sent with n sessions, as
   * layout.ts's readResponse without a hook. K[0] makes the TpmError of a non-zero code.
   */
  responseBody(cmd: FrameShape): string | undefined {
    this.out = [];
    this.k(null); // K[0]: the TpmError maker, set by the caller
    const top: Seg[] = [];
    const tag = this.readInt('u16', top);
    const size = this.readInt('u32', top);
    this.emit(`if (${size} !== b.length) ${this.dfail(top, `"header size " + ${size} + " does not match the " + b.length + " bytes received"`, '2')}`);
    const rc = this.readInt('u32', top);
    this.emit(`if (${rc} !== 0) {`);
    this.emit(`if (${tag} !== ${TAG_NO_SESSIONS} && ${tag} !== ${TAG_SESSIONS}) ${this.dfail(top, `"unknown tag 0x" + ${tag}.toString(16)`, '0')}`);
    this.emit(`if (e - o !== 0) ${this.dfail(top, `"error response carries " + (e - o) + " unexpected bytes"`, 'o')}`);
    this.emit(`throw K[0](${rc});`);
    this.emit('}');
    this.emit(`const xt = n > 0 ? ${TAG_SESSIONS} : ${TAG_NO_SESSIONS};`);
    this.emit(`if (${tag} !== xt) ${this.dfail(top, `"tag 0x" + ${tag}.toString(16) + " but expected 0x" + xt.toString(16)`, '0')}`);
    const handles = new Map<string, string>();
    for (const h of cmd.responseHandles) handles.set(h, this.readInt('u32', [{ name: h }]));
    // With sessions, parameterSize bounds the parameters (as Reader.exactly); without, the frame.
    this.emit('let ps = 0, pst = 0;');
    this.emit('if (n > 0) {');
    this.emit('const psAt = o;');
    const ps = this.readInt('u32', top);
    this.emit(`if (${ps} > e - o) ${this.dfail(top, `"parameterSize " + ${ps} + " is more than the " + (e - o) + " bytes left"`, 'psAt')}`);
    this.emit(`ps = ${ps}; pst = o; e = o + ${ps};`);
    this.emit('}');
    const params = this.fields(cmd.response);
    if (!params) return undefined;
    this.emit('const auths = [];');
    this.emit('if (n > 0) {');
    this.emit(`if (o !== e) ${this.dfail(top, `"parameters: size field says " + ps + " bytes but the structure used " + (o - pst)`, 'o')}`);
    this.emit('e = b.length;');
    this.emit('for (let ai = 0; ai < n; ai++) {');
    const af = this.authFields;
    const entry = this.authEntry(
      [
        ['nonceTPM', af.nonce],
        ['sessionAttributes', af.u8],
        ['hmac', af.auth],
      ],
      [{ expr: '"authResponse[" + ai + "]"' }],
    );
    this.emit(`auths.push(${entry});`);
    this.emit('}');
    this.emit('}');
    this.emit(`if (e - o !== 0) ${this.dfail(top, `(e - o) + " trailing bytes after the response"`, 'o')}`);
    const out = new Map([...handles, ...params]);
    this.emit(`return { output: ${objectLiteral(out)}, auths };`);
    return this.finish(this.out.join('\n'));
  }

  /**
   * `function (f)`: decodes command frame f, as frames.ts's unmarshalCommand. K[0] is hex32.
   */
  commandBody(cmd: FrameShape): string | undefined {
    this.out = [];
    this.k(null); // K[0]: hex32, set by the caller
    const top: Seg[] = [];
    const tag = this.readInt('u16', top);
    this.emit(`if (${tag} !== ${TAG_SESSIONS} && ${tag} !== ${TAG_NO_SESSIONS}) ${this.dfail(top, `"unknown tag 0x" + ${tag}.toString(16)`, '0')}`);
    const size = this.readInt('u32', top);
    this.emit(`if (${size} !== b.length) ${this.dfail(top, `"header size " + ${size} + " does not match the " + b.length + " bytes given"`, '2')}`);
    const code = this.readInt('u32', top);
    this.emit(`if (${code} !== ${num(cmd.code)}) ${this.dfail(top, `"command code " + K[0](${code}) + ${lit(` is not ${cmd.name}`)}`, '6')}`);
    const handles = new Map<string, string>();
    for (const h of cmd.handles) handles.set(h.name, this.readInt('u32', [{ name: h.name }]));
    this.emit('const auths = [];');
    this.emit(`if (${tag} === ${TAG_SESSIONS}) {`);
    this.emit('const at = o;');
    const authSize = this.readInt('u32', top);
    this.emit(`if (${authSize} > e - o) ${this.dfail(top, `"authorizationSize " + ${authSize} + " is more than the " + (e - o) + " bytes left"`, 'at')}`);
    this.emit(`e = o + ${authSize};`);
    // Entries until the area is used up; reading past its end fails inside an entry.
    this.emit('for (let ai = 0; o < e; ai++) {');
    this.emit(`if (ai >= ${MAX_SESSIONS}) ${this.dfail(top, lit(`more than ${MAX_SESSIONS} sessions`), 'o')}`);
    const af = this.authFields;
    const entry = this.authEntry(
      [
        ['sessionHandle', af.u32],
        ['nonceCaller', af.nonce],
        ['sessionAttributes', af.u8],
        ['hmac', af.auth],
      ],
      [{ expr: '"authorization[" + ai + "]"' }],
    );
    this.emit(`auths.push(${entry});`);
    this.emit('}');
    this.emit('e = b.length;');
    this.emit(`if (auths.length === 0) ${this.dfail(top, '"TPM_ST_SESSIONS with an empty authorization area"', 'at')}`);
    this.emit('}');
    // The parameters: the struct's own decoder, inlined (one object, as cmd.params.decode gives).
    const params = this.dec(cmd.params, [], { param: true }, false);
    this.emit(`if (e - o !== 0) ${this.dfail(top, `(e - o) + " trailing bytes after the parameters"`, 'o')}`);
    this.emit(`return { tag: ${tag}, commandCode: ${code}, handles: ${objectLiteral(handles)}, auths, params: ${params} };`);
    return this.finish(this.out.join('\n'));
  }
}

export class FrameEncodeGen extends EncodeGen {
  constructor(
    refOf: ReferenceOf,
    private readonly authFields: AuthFields,
  ) {
    super(refOf);
  }

  /** The header's fixed part: tag, a size patched at the end, and `code`. */
  private header(tag: string, code: string): void {
    this.emit(LOCALS);
    this.room(10);
    this.emit(`wv.setUint16(0, ${tag}); wv.setUint32(2, 0); wv.setUint32(6, ${code}); p = 10;`);
  }

  private authEntry(fields: [string, AnyCodec][], a: string, segs: Seg[]): void {
    for (const [k, fc] of fields) {
      const f = this.v('f');
      this.emit(`const ${f} = ${a}.${k};`);
      this.enc(fc, f, segs, null);
    }
  }

  /**
   * `function (w, input, auths, names, count, EMPTY)`: command frame of `input` with `count`
   * authorizations `auths[names[i]] ?? EMPTY`, into the empty writer w (layout.ts's
   * writeCommand without parameter bytes). K[0] is handleOf.
   */
  commandBody(cmd: FrameShape): string | undefined {
    this.out = [];
    this.k(null); // K[0]: handleOf, set by the caller
    this.emit('const ctx = undefined;');
    this.header(`count > 0 ? ${TAG_SESSIONS} : ${TAG_NO_SESSIONS}`, num(cmd.code));
    for (const h of cmd.handles) {
      const hv = this.v('h');
      this.emit(`const ${hv} = K[0](input[${lit(h.name)}]);`);
      this.writeInt('u32', hv, [{ name: cmd.name }, { name: h.name }]);
    }
    this.emit('if (count > 0) {');
    this.emit('const at = p;');
    this.writeInt('u32', '0', [], true);
    this.emit('for (let ai = 0; ai < count; ai++) {');
    this.emit('const a = auths[names[ai]] ?? EMPTY;');
    const af = this.authFields;
    this.authEntry(
      [
        ['sessionHandle', af.u32],
        ['nonceCaller', af.nonce],
        ['sessionAttributes', af.u8],
        ['hmac', af.auth],
      ],
      'a',
      [{ name: cmd.name }, { expr: '"authorization(" + names[ai] + ")"' }],
    );
    this.emit('}');
    this.emit('wv.setUint32(at, p - at - 4);');
    this.emit('}');
    this.enc(cmd.params, 'input', [], { param: true });
    this.emit('wv.setUint32(2, p); w.length = p;');
    return this.fallbacks > 0 ? undefined : this.out.join('\n');
  }

  /**
   * `function (w, output, auths)`: response frame of `output` (and `auths`, if any) into the
   * empty writer w, as frames.ts's marshalResponse.
   */
  responseBody(cmd: FrameShape): string | undefined {
    this.out = [];
    this.emit('const ctx = undefined;');
    this.emit('const ws = auths !== undefined && auths.length > 0;');
    this.header(`ws ? ${TAG_SESSIONS} : ${TAG_NO_SESSIONS}`, '0');
    for (const h of cmd.responseHandles) {
      const hv = this.v('h');
      this.emit(`const ${hv} = output[${lit(h)}];`);
      this.writeInt('u32', hv, [{ name: h }]);
    }
    this.emit('const at = p;');
    this.emit('if (ws) {');
    this.writeInt('u32', '0', [], true);
    this.emit('}');
    this.enc(cmd.response, 'output', [], { param: true });
    this.emit('if (ws) {');
    this.emit('wv.setUint32(at, p - at - 4);');
    this.emit('for (const a of auths) {');
    const af = this.authFields;
    this.authEntry(
      [
        ['nonceTPM', af.nonce],
        ['sessionAttributes', af.u8],
        ['hmac', af.auth],
      ],
      'a',
      [],
    );
    this.emit('}');
    this.emit('}');
    this.emit('wv.setUint32(2, p); w.length = p;');
    return this.fallbacks > 0 ? undefined : this.out.join('\n');
  }
}
