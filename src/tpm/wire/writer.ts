import { TpmEncodeError } from './errors.js';
import { slabCopy } from './slab.js';

/**
 * Growable big-endian writer. Range checks happen here, so no caller can marshal a value
 * that silently wraps (a UINT16 of 70000, a negative UINT32, a UINT64 given as a number).
 */
export class Writer {
  // `buf`, `view` and `ensure` are used by name by the generated encoders (compile.ts).
  private buf: Uint8Array;
  private view: DataView;
  length = 0;
  /** Names of the structures/fields being encoded, for error messages. */
  readonly path: string[] = [];

  constructor(
    initial = 256,
    /** Whether working memory comes from Node's pool (a short-lived writer) or is its own (a reused one). */
    private readonly pooled = true,
  ) {
    this.buf = pooled ? workBuffer(initial) : new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  fail(reason: string): never {
    throw new TpmEncodeError(reason, this.path.join('.'));
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = this.pooled ? workBuffer(size) : new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  private checkInt(v: unknown, max: number, what: string): asserts v is number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      this.fail(`${what} must be an integer in 0..${max}, got ${describe(v)}`);
    }
  }

  u8(v: number): void {
    this.checkInt(v, 0xff, 'UINT8');
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }

  u16(v: number): void {
    this.checkInt(v, 0xffff, 'UINT16');
    this.ensure(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }

  u32(v: number): void {
    this.checkInt(v, 0xffffffff, 'UINT32');
    this.ensure(4);
    this.view.setUint32(this.length, v);
    this.length += 4;
  }

  i32(v: number): void {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
      this.fail(`INT32 must be an integer in -2^31..2^31-1, got ${describe(v)}`);
    }
    this.ensure(4);
    this.view.setInt32(this.length, v);
    this.length += 4;
  }

  u64(v: bigint): void {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) {
      this.fail(`UINT64 must be a bigint in 0..2^64-1, got ${describe(v)}`);
    }
    this.ensure(8);
    this.view.setBigUint64(this.length, v);
    this.length += 8;
  }

  bytes(b: Uint8Array): void {
    if (!(b instanceof Uint8Array)) this.fail(`expected bytes (Uint8Array), got ${describe(b)}`);
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** Overwrites a UINT16 written earlier (used to back-patch TPM2B sizes). */
  patchU16(at: number, v: number): void {
    this.checkInt(v, 0xffff, 'UINT16 size');
    this.view.setUint16(at, v);
  }

  /** Overwrites a UINT32 written earlier (used to back-patch command sizes). */
  patchU32(at: number, v: number): void {
    this.checkInt(v, 0xffffffff, 'UINT32 size');
    this.view.setUint32(at, v);
  }

  /** Empties the writer for another frame (the compiled frame code reuses one). @internal */
  clear(): void {
    this.length = 0;
    if (this.path.length !== 0) this.path.length = 0; // the setter costs even when it changes nothing
  }

  /** Bytes the writer holds, written or not. @internal */
  get capacity(): number {
    return this.buf.length;
  }

  /**
   * The bytes written so far, copied: above 64 bytes into slab memory (slab.ts: `.buffer` is
   * shared), else into an array of their own (V8 keeps those on its heap, cheaper still). @internal
   */
  finishShared(): Uint8Array {
    const n = this.length;
    if (n <= 64) return this.pooled ? new Uint8Array(this.buf.subarray(0, n)) : this.buf.slice(0, n);
    return slabCopy(this.buf.subarray(0, n));
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    // Copies; for a Buffer, slice() would be a view (and its subarray() is slow).
    return this.pooled ? new Uint8Array(this.buf.subarray(0, this.length)) : this.buf.slice(0, this.length);
  }
}

/**
 * The writer's private working memory: a slice of Node's shared Buffer pool (no allocation of
 * its own for frames under 4 KiB, where a fresh Uint8Array costs an off-heap allocation). Its
 * old contents are never exposed: only bytes written are copied out by finish(), and patches
 * land inside them.
 */
function workBuffer(size: number): Uint8Array {
  return Buffer.allocUnsafe(size);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}
