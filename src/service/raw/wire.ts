/**
 * The service's side of the raw channel's wire (protocol/raw.ts): command frames cut out of the byte
 * stream by their own headers.
 */
import { MAX_COMMAND_SIZE } from '../../firewall/frame.js';

export { RAW_PATH, RAW_PROTOCOL } from '../protocol/raw.js';

/** A frame whose header size is < 10 or > 4096: the stream cannot be followed past it. */
export class BadFrameSize extends Error {
  override readonly name = 'BadFrameSize';
}

/**
 * Cuts command frames out of the byte stream, holding at most one frame and one chunk; a size
 * outside 10..4096 is refused at once, before its bytes are waited for.
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Bytes of a frame begun and not complete (0: between frames). */
  get partial(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
  }

  /** The next whole frame, or undefined until more bytes come. Throws BadFrameSize. */
  next(): Uint8Array | undefined {
    if (this.pending.length < 6) return undefined;
    const size = this.pending.readUInt32BE(2);
    if (size < 10 || size > MAX_COMMAND_SIZE) throw new BadFrameSize(`a command frame of ${size} bytes (10 to ${MAX_COMMAND_SIZE})`);
    if (this.pending.length < size) return undefined;
    const frame = new Uint8Array(this.pending.subarray(0, size));
    this.pending = this.pending.subarray(size);
    return frame;
  }
}
