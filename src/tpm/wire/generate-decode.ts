/**
 * The decoder of a codec as straight-line code: one local offset and end, bounds checked before
 * every read, the interpreted codecs' errors (message, path, offset) thrown where they would be.
 */
import type { AnyCodec } from './types.js';
import { slabCopy } from './slab.js';
import { CodeGen, GETTER, INT_NAME, INT_SIZE, lit, objectLiteral, plural, num, selectorExpr, ctxObject, segsExpr, type Ctx, type Seg } from './generate.js';

/**
 * The bytes as a plain Uint8Array: a Buffer's slice() is a view, not a copy, and its subarray()
 * is slow; a plain view of the same memory has neither problem.
 */
export const PLAIN = (x: string): string => `(${x}.constructor === Uint8Array ? ${x} : new Uint8Array(${x}.buffer, ${x}.byteOffset, ${x}.byteLength))`;

/** The buffer of every empty byte field decoded: zero bytes, so nothing to share or change. */
let EMPTY = new ArrayBuffer(0);

/**
 * An empty byte field: a view of EMPTY (`new Uint8Array(0)` costs V8 a backing store of its
 * own, ~5 times a small copy). If someone transferred EMPTY away (postMessage, structuredClone
 * with `transfer`), it is detached: then a new one.
 */
function emptyBytes(): Uint8Array {
  try {
    return new Uint8Array(EMPTY);
  } catch {
    EMPTY = new ArrayBuffer(0);
    return new Uint8Array(EMPTY);
  }
}

export class DecodeGen extends CodeGen {
  protected fallbacks = 0;
  /**
   * Byte fields as views into the frame instead of copies: only for a frame its caller owns
   * (nobody writes to it afterwards: see unmarshalResponse's `owned`).
   */
  protected views = false;
  private empty: string | undefined;

  private emptyRef(): string {
    return (this.empty ??= this.k(emptyBytes));
  }

  private slab: string | undefined;
  private slabRef(): string {
    return (this.slab ??= this.k(slabCopy));
  }

  decoderBody(c: AnyCodec): string {
    this.out = [];
    const v = this.dec(c, [], { param: true }, false);
    const body = this.out.join('\n');
    const head = `const b = ${PLAIN('r.buf')}, dv = r.view, o0 = r.offset;\nlet o = o0, e = r.end;`;
    const done = `r.offset = o;\nreturn ${v};`;
    if (this.fallbacks === 0) return `return function decode(r, ctx) {\n${head}\n${body}\n${done}\n};`;
    // A hand-written codec moves the shared reader and path: put them back if anything fails.
    return `return function decode(r, ctx) {\n${head}\nconst d0 = r.path.length;\ntry {\n${body}\n${done}\n} catch (x) { r.offset = o0; r.path.length = d0; throw x; }\n};`;
  }

  /** Throws a TpmDecodeError at `segs` (relative to the reader's path at entry). */
  protected dfail(segs: readonly Seg[], reason: string, at: string): string {
    return `throw D(r, ${this.path(segs)}, ${reason}, ${at});`;
  }

  /** Reader.need: the same message, at the current offset. */
  protected need(segs: readonly Seg[], n: number | string, what: string): void {
    if (typeof n === 'number') {
      this.emit(`if (e - o < ${n}) ${this.dfail(segs, `"need ${n} byte${plural(n)} for ${what}, only " + (e - o) + " left"`, 'o')}`);
    } else {
      this.emit(`if (e - o < ${n}) ${this.dfail(segs, `"need " + ${n} + (${n} === 1 ? " byte" : " bytes") + " for " + ${what} + ", only " + (e - o) + " left"`, 'o')}`);
    }
  }

  protected readInt(kind: 'u8' | 'u16' | 'u32' | 'i32' | 'u64', segs: readonly Seg[]): string {
    this.need(segs, INT_SIZE[kind], INT_NAME[kind]);
    const v = this.v();
    // Bytes read one by one need no DataView; a UINT32 is put together without bit operators on
    // its top byte (values >= 2^31 stay positive).
    const read =
      kind === 'u8' ? 'b[o]' : kind === 'u16' ? '(b[o] << 8) | b[o + 1]' : kind === 'u32' ? 'b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3])' : `dv.${GETTER[kind]}(o)`;
    this.emit(`const ${v} = ${read};`);
    this.emit(`o += ${INT_SIZE[kind]};`);
    return v;
  }

  /** A copy of `n` bytes (Reader.bytes), `n` a variable or a number. */
  private readBytes(n: string, segs: readonly Seg[]): string {
    this.need(segs, n, `${n} + "-byte array"`);
    const v = this.v();
    if (this.views) {
      this.emit(`const ${v} = ${n} === 0 ? ${this.emptyRef()}() : new Uint8Array(b.buffer, b.byteOffset + o, ${n});`);
      this.emit(`o += ${n};`);
      return v;
    }
    // Up to 64 bytes (V8 keeps such arrays on its heap) a loop beats making a view to copy from;
    // above, a copy into slab memory (slab.ts: a fresh ArrayBuffer each costs more than the rest).
    this.emit(`let ${v};\nif (${n} === 0) ${v} = ${this.emptyRef()}(); else if (${n} <= 64) { ${v} = new Uint8Array(${n}); for (let j = 0; j < ${n}; j++) ${v}[j] = b[o + j]; } else ${v} = ${this.slabRef()}(b.subarray(o, o + ${n}));`);
    this.emit(`o += ${n};`);
    return v;
  }

  protected dec(c: AnyCodec, segs: readonly Seg[], ctx: Ctx, sized: boolean): string {
    const ref = this.refOf(c);
    const m = c.meta;
    if (!ref) return this.decFallback(c, segs, ctx, sized);
    if (ref.boolean) {
      const at = this.v('at');
      this.emit(`const ${at} = o;`);
      const t = this.readInt('u8', segs);
      this.emit(`if (${t} > 1) ${this.dfail(segs, `"TPMI_YES_NO must be 0 or 1, got " + ${t}`, at)}`);
      const v = this.v();
      this.emit(`const ${v} = ${t} === 1;`);
      return v;
    }
    switch (m.kind) {
      case 'u8':
      case 'u16':
      case 'u32':
      case 'i32':
      case 'u64':
        return this.readInt(m.kind, segs);
      case 'fixed':
        return this.readBytes(num(m.length), segs);
      case 'none': {
        const v = this.v();
        this.emit(`const ${v} = null;`);
        return v;
      }
      case 'oneOf': {
        const at = this.v('at');
        this.emit(`const ${at} = o;`);
        const t = this.dec(m.base, segs, null, sized);
        const show = `"0x" + ${t}.toString(16).padStart(${m.base.meta.kind === 'u8' ? 2 : 4}, "0")`;
        this.emit(`if (!(${this.allowed(t, m.values)})) ${this.dfail(segs, `${lit(m.name + ': ')} + ${show} + " is not an allowed value"`, at)}`);
        return t;
      }
      case 'tpm2b': {
        const s = m.name ? [...segs, { name: m.name }] : segs;
        const at = this.v('at');
        this.emit(`const ${at} = o;`);
        const n = this.readInt(m.sizeBytes === 1 ? 'u8' : 'u16', s);
        this.emit(`if (${n} > ${num(m.max)}) ${this.dfail(s, `"size " + ${n} + " is more than the maximum of ${m.max}"`, at)}`);
        return this.readBytes(n, s);
      }
      case 'sized': {
        const s = m.name ? [...segs, { name: m.name }] : segs;
        const at = this.v('at');
        this.emit(`const ${at} = o;`);
        const n = this.readInt('u16', s);
        this.emit(`if (${n} === 0) ${this.dfail(s, '"size is 0 but a structure is required"', at)}`);
        this.need(s, n, lit(m.name));
        const start = this.v('st');
        const outer = this.v('oe');
        this.emit(`const ${start} = o, ${outer} = e;`);
        this.emit(`e = o + ${n};`);
        const v = this.dec(m.inner, s, null, true);
        this.emit(`if (o !== e) ${this.dfail(s, `${lit(m.name + ': size field says ')} + ${n} + " bytes but the structure used " + (o - ${start})`, 'o')}`);
        this.emit(`e = ${outer};`);
        return v;
      }
      case 'list': {
        const s = m.name ? [...segs, { name: m.name }] : segs;
        const at = this.v('at');
        this.emit(`const ${at} = o;`);
        const n = this.readInt('u32', s);
        this.emit(`if (${n} > ${num(m.max)}) ${this.dfail(s, `"count " + ${n} + " is more than the maximum of ${m.max}"`, at)}`);
        this.emit(`if (${n} > e - o) ${this.dfail(s, `"count " + ${n} + " is more than the " + (e - o) + " bytes left"`, at)}`);
        const arr = this.v('a');
        const i = this.v('i');
        this.emit(`const ${arr} = [];`);
        this.emit(`for (let ${i} = 0; ${i} < ${n}; ${i}++) {`);
        const item = this.dec(m.item, [...s, { index: i }], null, sized);
        this.emit(`${arr}.push(${item});`);
        this.emit('}');
        return arr;
      }
      case 'struct': {
        const s = m.name ? [...segs, { name: m.name }] : segs;
        const vars = new Map<string, string>();
        for (const [k, fc] of Object.entries(m.fields)) {
          vars.set(k, this.dec(fc, [...s, { name: k }], { fields: new Map(vars) }, sized));
        }
        const v = this.v();
        this.emit(`const ${v} = ${objectLiteral(vars)};`);
        return v;
      }
      case 'union': {
        const s = m.name ? [...segs, { name: m.name }] : segs;
        const sel = this.v('sel');
        this.emit(`const ${sel} = ${selectorExpr(ctx, m.selector)};`);
        this.emit(`if (typeof ${sel} !== "number") ${this.dfail(s, lit(`selector ${m.selector} is missing`), 'o')}`);
        const v = this.v();
        this.emit(`let ${v};`);
        this.emit(`switch (${sel}) {`);
        for (const [key, arm] of m.arms) {
          this.emit(`case ${num(key)}: {`);
          const a = this.dec(arm, s, null, sized);
          this.emit(`${v} = ${a};`);
          this.emit('break; }');
        }
        this.emit(`default: ${this.dfail(s, `${lit(`unknown selector ${m.selector}=0x`)} + ${sel}.toString(16).padStart(4, "0")`, 'o')}`);
        this.emit('}');
        return v;
      }
    }
  }

  /** A hand-written codec: called with the reader at our offset and the path as it expects. */
  private decFallback(c: AnyCodec, segs: readonly Seg[], ctx: Ctx, sized: boolean): string {
    this.fallbacks++;
    const codec = this.k(c);
    const rd = this.v('rd');
    // Inside a sized structure the reader must stop at its end: a sub-reader, as `exactly` makes.
    this.emit(sized ? `const ${rd} = new Reader(b, e, r); ${rd}.offset = o;` : `const ${rd} = r; r.offset = o;`);
    const d = this.v('d');
    this.emit(`const ${d} = r.path.length;`);
    this.emit(`r.path.push(...${segsExpr(segs)});`);
    const v = this.v();
    this.emit(`const ${v} = ${codec}.decode(${rd}, ${ctxObject(ctx)});`);
    this.emit(`r.path.length = ${d};`);
    this.emit(`o = ${rd}.offset;`);
    return v;
  }

}
