/**
 * The encoder of a codec as straight-line code: the interpreted codecs' checks before every
 * write, their errors (message, path) thrown where they would be.
 */
import type { AnyCodec } from './types.js';
import { CodeGen, INT_NAME, INT_SIZE, MAX, SETTER, lit, num, selectorExpr, ctxObject, segsExpr, type Ctx, type Seg } from './generate.js';

/**
 * The writer's position, bytes and view as locals (property loads and stores on every field cost
 * more than the writes): put back into `w` before anything else uses it (ensure, a hand-written
 * codec, the end).
 */
export const LOCALS = 'let p = w.length, wb = w.buf, wv = w.view;';

export class EncodeGen extends CodeGen {
  encoderBody(c: AnyCodec): string {
    this.out = [];
    this.enc(c, 'v', [], { param: true });
    return `return function encode(w, v, ctx) {\n${LOCALS}\n${this.out.join('\n')}\nw.length = p;\n};`;
  }

  /** Throws a TpmEncodeError at `segs` (relative to the writer's path at entry). */
  protected efail(segs: readonly Seg[], reason: string): string {
    return `throw E(w, ${this.path(segs)}, ${reason});`;
  }

  /** Room for `n` more bytes (Writer.ensure, which may replace the buffer and view). */
  protected room(n: number | string): void {
    this.emit(`if (p + ${n} > wb.length) { w.length = p; w.ensure(${n}); wb = w.buf; wv = w.view; }`);
  }

  /** An integer after the checks of Writer.u8/u16/u32/i32/u64, with their messages. */
  protected writeInt(kind: 'u8' | 'u16' | 'u32' | 'i32' | 'u64', x: string, segs: readonly Seg[], checked = false): void {
    if (!checked) {
      if (kind === 'u64') {
        this.emit(
          `if (typeof ${x} !== "bigint" || ${x} < 0n || ${x} > 0xffffffffffffffffn) ${this.efail(segs, `"UINT64 must be a bigint in 0..2^64-1, got " + describe(${x})`)}`,
        );
      } else if (kind === 'i32') {
        this.emit(
          `if (typeof ${x} !== "number" || !Number.isInteger(${x}) || ${x} < -0x80000000 || ${x} > 0x7fffffff) ${this.efail(segs, `"INT32 must be an integer in -2^31..2^31-1, got " + describe(${x})`)}`,
        );
      } else {
        this.emit(
          `if (typeof ${x} !== "number" || !Number.isInteger(${x}) || ${x} < 0 || ${x} > ${MAX[kind]}) ${this.efail(segs, `"${INT_NAME[kind]} must be an integer in 0..${MAX[kind]}, got " + describe(${x})`)}`,
        );
      }
    }
    this.room(INT_SIZE[kind]);
    this.emit(kind === 'u8' ? `wb[p++] = ${x};` : `wv.${SETTER[kind]}(p, ${x}); p += ${INT_SIZE[kind]};`);
  }

  /** Bytes already known to be a Uint8Array (Writer.bytes). */
  private writeBytes(x: string): void {
    // Empty fields are common (auth values, policies, outside info): no call for them.
    this.emit(`if (${x}.length !== 0) {`);
    this.room(`${x}.length`);
    this.emit(`wb.set(${x}, p); p += ${x}.length;`);
    this.emit('}');
  }

  protected enc(c: AnyCodec, x: string, segs: readonly Seg[], ctx: Ctx): void {
    const ref = this.refOf(c);
    const m = c.meta;
    if (!ref) return this.encFallback(c, x, segs, ctx);
    if (ref.boolean) {
      this.emit(`if (typeof ${x} !== "boolean") ${this.efail(segs, `"TPMI_YES_NO must be a boolean, got " + describe(${x})`)}`);
      this.room(1);
      this.emit(`wb[p++] = ${x} ? 1 : 0;`);
      return;
    }
    switch (m.kind) {
      case 'u8':
      case 'u16':
      case 'u32':
      case 'i32':
      case 'u64':
        return this.writeInt(m.kind, x, segs);
      case 'fixed':
        this.emit(`if (!(${x} instanceof Uint8Array) || ${x}.length !== ${num(m.length)}) ${this.efail(segs, `"expected exactly ${m.length} bytes, got " + describe(${x})`)}`);
        return this.writeBytes(x);
      case 'none':
        this.emit(`if (${x} !== null && ${x} !== undefined) ${this.efail(segs, `"expected no value for this selector, got " + describe(${x})`)}`);
        return;
      case 'oneOf': {
        const show = `(typeof ${x} === "number" ? "0x" + ${x}.toString(16).padStart(${m.base.meta.kind === 'u8' ? 2 : 4}, "0") : describe(${x}))`;
        this.emit(`if (!(${this.allowed(x, m.values)})) ${this.efail(segs, `${lit(m.name + ': ')} + ${show} + " is not an allowed value"`)}`);
        const bk = m.base.meta.kind;
        // An allowed value is one of the listed integers: the base's own range check cannot fail.
        if (this.refOf(m.base) !== undefined && (bk === 'u8' || bk === 'u16' || bk === 'u32') && m.values.every((y) => Number.isInteger(y) && y >= 0 && y <= MAX[bk])) {
          return this.writeInt(bk, x, segs, true);
        }
        return this.enc(m.base, x, segs, null);
      }
      case 'tpm2b': {
        const s = [...segs, { name: m.name }];
        this.emit(`if (!(${x} instanceof Uint8Array)) ${this.efail(s, `"expected bytes (Uint8Array), got " + describe(${x})`)}`);
        this.emit(`if (${x}.length > ${num(m.max)}) ${this.efail(s, `${x}.length + " bytes is more than the maximum of ${m.max}"`)}`);
        const size = m.sizeBytes === 1 ? 'u8' : 'u16';
        // A maximum within the size field's range makes the size's own check redundant.
        this.writeInt(size, `${x}.length`, s, m.max <= MAX[size]);
        return this.writeBytes(x);
      }
      case 'sized': {
        const s = [...segs, { name: m.name }];
        const at = this.v('at');
        this.emit(`const ${at} = p;`);
        this.writeInt('u16', '0', s, true);
        this.enc(m.inner, x, s, null);
        const n = this.v('n');
        this.emit(`const ${n} = p - ${at} - 2;`);
        this.emit(`if (${n} > 0xffff) ${this.efail(s, `"structure of " + ${n} + " bytes does not fit a UINT16 size"`)}`);
        this.emit(`wv.setUint16(${at}, ${n});`);
        return;
      }
      case 'list': {
        const s = [...segs, { name: m.name }];
        this.emit(`if (!Array.isArray(${x})) ${this.efail(s, `"expected an array, got " + describe(${x})`)}`);
        this.emit(`if (${x}.length > ${num(m.max)}) ${this.efail(s, `${x}.length + " items is more than the maximum of ${m.max}"`)}`);
        this.writeInt('u32', `${x}.length`, s, m.max <= 0xffffffff);
        const i = this.v('i');
        const item = this.v('x');
        this.emit(`for (let ${i} = 0; ${i} < ${x}.length; ${i}++) {`);
        // The interpreted list walks with forEach, which skips holes: so does this.
        this.emit(`if (!(${i} in ${x})) continue;`);
        this.emit(`const ${item} = ${x}[${i}];`);
        this.enc(m.item, item, [...s, { index: i }], null);
        this.emit('}');
        return;
      }
      case 'struct': {
        const s = [...segs, { name: m.name }];
        this.emit(`if (typeof ${x} !== "object" || ${x} === null) ${this.efail(s, `"expected an object, got " + describe(${x})`)}`);
        for (const [k, fc] of Object.entries(m.fields)) {
          const fs = [...s, { name: k }];
          this.emit(`if (!(${lit(k)} in ${x})) ${this.efail(fs, '"missing field"')}`);
          const f = this.v('f');
          this.emit(`const ${f} = ${x}[${lit(k)}];`);
          this.enc(fc, f, fs, { object: x });
        }
        return;
      }
      case 'union': {
        const s = [...segs, { name: m.name }];
        const sel = this.v('sel');
        this.emit(`const ${sel} = ${selectorExpr(ctx, m.selector)};`);
        this.emit(`if (typeof ${sel} !== "number") ${this.efail(s, lit(`selector ${m.selector} is missing`))}`);
        this.emit(`switch (${sel}) {`);
        for (const [key, arm] of m.arms) {
          this.emit(`case ${num(key)}: {`);
          this.enc(arm, x, s, null);
          this.emit('break; }');
        }
        this.emit(`default: ${this.efail(s, `${lit(`unknown selector ${m.selector}=0x`)} + ${sel}.toString(16).padStart(4, "0")`)}`);
        this.emit('}');
        return;
      }
    }
  }

  protected fallbacks = 0;

  private encFallback(c: AnyCodec, x: string, segs: readonly Seg[], ctx: Ctx): void {
    this.fallbacks++;
    const codec = this.k(c);
    const d = this.v('d');
    this.emit(`const ${d} = w.path.length;`);
    this.emit(`w.path.push(...${segsExpr(segs)});`);
    this.emit(`w.length = p;`);
    this.emit(`${codec}.encode(w, ${x}, ${ctxObject(ctx)});`);
    this.emit(`w.path.length = ${d};`);
    this.emit(`p = w.length; wb = w.buf; wv = w.view;`);
  }
}
