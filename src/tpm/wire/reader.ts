import { TpmDecodeError } from './errors.js';

/**
 * Bounds-checked big-endian reader over a byte array (TPM 2.0 Part 1, "Marshaling": all
 * integers are big-endian). Every read checks the remaining length first, so the offset
 * only ever advances over bytes that exist. UINT32 goes through DataView (never `<<`/`|`,
 * which turn values ≥ 2³¹ negative); UINT64 is a bigint.
 */
export class Reader {
  // `view` and `end` are read by name by the generated decoders (compile.ts): keep them fields.
  private readonly view: DataView;
  offset = 0;
  /** Names of the structures/fields being decoded, for error messages. */
  readonly path: string[];

  constructor(
    readonly buf: Uint8Array,
    private readonly end = buf.length,
    /** Used by `exactly` only: a sub-reader shares its parent's view and path. */
    parent?: Reader,
  ) {
    this.view = parent ? parent.view : new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.path = parent ? parent.path : [];
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  fail(reason: string, at = this.offset): never {
    throw new TpmDecodeError(reason, this.path.join('.'), at);
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.offset) {
      this.fail(`need ${n} byte${n === 1 ? '' : 's'} for ${what}, only ${this.end - this.offset} left`);
    }
  }

  u8(): number {
    this.need(1, 'UINT8');
    return this.view.getUint8(this.offset++);
  }

  u16(): number {
    this.need(2, 'UINT16');
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'UINT32');
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  i32(): number {
    this.need(4, 'INT32');
    const v = this.view.getInt32(this.offset);
    this.offset += 4;
    return v;
  }

  u64(): bigint {
    this.need(8, 'UINT64');
    const v = this.view.getBigUint64(this.offset);
    this.offset += 8;
    return v;
  }

  /** A copy of the next n bytes (copies, so decoded values never alias a reused buffer). */
  bytes(n: number): Uint8Array {
    this.need(n, `${n}-byte array`);
    // new Uint8Array(view) copies; it is several times faster than slice() in V8 (and, unlike
    // Buffer#slice, always a copy even when the input is a Buffer).
    const out = new Uint8Array(this.buf.subarray(this.offset, this.offset + n));
    this.offset += n;
    return out;
  }

  /**
   * Runs `fn` over exactly the next `n` bytes: fails if it reads past them or leaves any unread
   * (a TPM2B wrapping a structure must be consumed exactly).
   */
  exactly<T>(n: number, what: string, fn: (r: Reader) => T): T {
    this.need(n, what);
    const start = this.offset;
    // The sub-reader shares this reader's DataView and path (no copies): it is used only
    // inside `fn`, codecs leave the path balanced on success, and an error's path is read
    // when the error is made.
    const sub = new Reader(this.buf, start + n, this);
    sub.offset = start;
    const v = fn(sub);
    if (sub.offset !== start + n) {
      this.fail(`${what}: size field says ${n} bytes but the structure used ${sub.offset - start}`, sub.offset);
    }
    this.offset = start + n;
    return v;
  }
}
