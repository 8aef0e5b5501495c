/**
 * What the two code generators (generate-decode.ts, generate-encode.ts) share: path segments,
 * literals, the integer kinds, and a generator's constants and output lines.
 */
import type { AnyCodec, Reference } from './types.js';

/**
 * A path segment of the generated code: a static name, a list index held in a variable
 * (rendered `[i]`, as the interpreted list does), or a JS expression of the generator's own
 * (a frame's `authorization[i]`).
 */
export type Seg = { name: string } | { index: string } | { expr: string };

export const lit = (s: string): string => JSON.stringify(s);
/** JS expression of the array of segments (evaluated only when an error is thrown). */
export const segsExpr = (segs: readonly Seg[]): string =>
  '[' + segs.map((s) => ('name' in s ? lit(s.name) : 'index' in s ? `"[" + ${s.index} + "]"` : s.expr)).join(', ') + ']';
export const plural = (n: number): string => (n === 1 ? '' : 's');
/** A number from a codec's meta, as a literal of the generated code (nothing else gets in). */
export const num = (x: unknown): string => {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new TypeError(`codec meta: ${String(x)} is not a finite number`);
  return String(x);
};

/**
 * Where a union finds its selector: the enclosing struct's fields decoded so far (variables), the
 * enclosing struct's value being encoded (a variable), the ctx argument, or nowhere.
 */
export type Ctx = { fields: ReadonlyMap<string, string> } | { object: string } | { param: true } | null;

export const MAX: Record<'u8' | 'u16' | 'u32', number> = { u8: 0xff, u16: 0xffff, u32: 0xffffffff };
export const INT_NAME: Record<'u8' | 'u16' | 'u32' | 'i32' | 'u64', string> = { u8: 'UINT8', u16: 'UINT16', u32: 'UINT32', i32: 'INT32', u64: 'UINT64' };
export const INT_SIZE: Record<'u8' | 'u16' | 'u32' | 'i32' | 'u64', number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8 };
export const GETTER: Record<'u8' | 'u16' | 'u32' | 'i32' | 'u64', string> = { u8: 'getUint8', u16: 'getUint16', u32: 'getUint32', i32: 'getInt32', u64: 'getBigUint64' };
export const SETTER: Record<'u8' | 'u16' | 'u32' | 'i32' | 'u64', string> = { u8: 'setUint8', u16: 'setUint16', u32: 'setUint32', i32: 'setInt32', u64: 'setBigUint64' };

/** How a generator tells a combinator-built codec (inlined) from a hand-written one (called). */
export type ReferenceOf = (c: AnyCodec) => Reference | undefined;

/**
 * One code generation. The generated code reads Reader/Writer fields that TypeScript calls
 * private (`view`, `end`, `buf`, `ensure`): they are this directory's own internals.
 */
export class CodeGen {
  constructor(protected readonly refOf: ReferenceOf) {}
  /** The values the generated code reaches as `K[i]` (paths, hand-written codecs, sets). */
  readonly consts: unknown[] = [];
  protected out: string[] = [];
  protected n = 0;

  protected v(prefix = 'v'): string {
    return prefix + this.n++;
  }
  protected k(x: unknown): string {
    this.consts.push(x);
    return `K[${this.consts.length - 1}]`;
  }
  protected emit(line: string): void {
    this.out.push(line);
  }
  protected readonly paths = new Map<string, string>();
  /**
   * The segments as an expression: a shared constant array when all are static (keeps the
   * generated code small enough for the optimizing compiler), else an array built on failure.
   */
  protected path(segs: readonly Seg[]): string {
    if (!segs.every((x) => 'name' in x)) return segsExpr(segs);
    const names = segs.map((x) => ('name' in x ? x.name : ''));
    const key = JSON.stringify(names);
    let ref = this.paths.get(key);
    if (ref === undefined) {
      ref = this.k(names);
      this.paths.set(key, ref);
    }
    return ref;
  }

  /** `t` is one of `values` (what oneOf's Set says, written out when the list is short). */
  protected allowed(t: string, values: readonly number[]): string {
    if (values.length <= 16) return values.map((x) => `${t} === ${num(x)}`).join(' || ') || 'false';
    return `${this.k(new Set(values))}.has(${t})`;
  }
}

/** `{ "a": v1, "b": v2 }`, keys in wire order (as the interpreted struct adds them). */
export function objectLiteral(vars: ReadonlyMap<string, string>): string {
  return '{ ' + [...vars].map(([k, v]) => (k === '__proto__' ? `["__proto__"]: ${v}` : `${lit(k)}: ${v}`)).join(', ') + ' }';
}

/**
 * The selector a union reads: while decoding, the enclosing struct's fields decoded so far; while
 * encoding, the struct's whole value.
 */
export function selectorExpr(ctx: Ctx, selector: string): string {
  if (ctx === null) return 'undefined';
  if ('param' in ctx) return `(ctx == null ? undefined : ctx[${lit(selector)}])`;
  if (!('fields' in ctx)) return `${ctx.object}[${lit(selector)}]`;
  const v = ctx.fields.get(selector);
  // A name not decoded yet is looked up on an empty object, as the interpreted `out[selector]`.
  return v ?? `({})[${lit(selector)}]`;
}

/** What a hand-written codec gets as ctx (as from the interpreted struct). */
export function ctxObject(ctx: Ctx): string {
  if (ctx === null) return 'undefined';
  if ('param' in ctx) return 'ctx';
  if (!('fields' in ctx)) return ctx.object;
  return objectLiteral(ctx.fields);
}
