/**
 * Framing of TPM byte streams, shared by every transport: a frame is complete when the number
 * of bytes given by the header's size field (bytes 2..5, big-endian UINT32) has arrived.
 */
import { MAX_FRAME_SIZE, TPM_HEADER_SIZE, TpmTransportError } from './types.js';

/** The header's size field; `bytes` must hold at least 6 bytes. */
export function frameSize(bytes: Uint8Array): number {
  // Arithmetic, not a DataView: no `.buffer` of a small typed array to materialize.
  return bytes[2]! * 0x1000000 + bytes[3]! * 0x10000 + bytes[4]! * 0x100 + bytes[5]!;
}

function checkSize(size: number, what: string, maxSize: number): void {
  if (size < TPM_HEADER_SIZE) {
    throw new TpmTransportError('PROTOCOL', `${what} header claims ${size} bytes, less than the ${TPM_HEADER_SIZE}-byte header`);
  }
  if (size > maxSize) {
    throw new TpmTransportError('PROTOCOL', `${what} header claims ${size} bytes, more than the ${maxSize}-byte limit`);
  }
}

/**
 * Checks a command frame before it is sent: a size field that disagrees with the length would
 * leave the TPM waiting for bytes that never come (or read the next command as part of this one).
 */
export function checkCommand(command: Uint8Array, maxSize = MAX_FRAME_SIZE): void {
  if (!(command instanceof Uint8Array)) {
    throw new TypeError('command must be a Uint8Array');
  }
  if (command.length < TPM_HEADER_SIZE) {
    throw new TpmTransportError('PROTOCOL', `command is ${command.length} bytes, shorter than the ${TPM_HEADER_SIZE}-byte header`);
  }
  const size = frameSize(command);
  checkSize(size, 'command', maxSize);
  if (size !== command.length) {
    throw new TpmTransportError('PROTOCOL', `command header claims ${size} bytes but the command is ${command.length} bytes`);
  }
}

/**
 * Incremental response assembler. Bytes are pushed as they arrive; complete frames come out
 * as fresh copies (never views into the caller's or Node's pooled buffers). A size field that
 * is impossible throws PROTOCOL at once, before waiting for (or allocating) the body.
 */
export class ResponseFramer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  constructor(private readonly maxSize = MAX_FRAME_SIZE) {}

  /** Bytes received that do not yet form a complete frame. */
  get buffered(): number {
    return this.length;
  }

  /** The expected size of the frame being assembled, once its size field has arrived. */
  get expected(): number | undefined {
    return this.length >= 6 ? frameSize(this.peek(6)) : undefined;
  }

  reset(): void {
    this.chunks = [];
    this.length = 0;
  }

  /** Adds bytes; returns every frame completed by them (usually zero or one). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.length === 0) return [];
    if (this.length === 0 && chunk.length >= 6) {
      // The usual case: one whole response in one chunk, copied once and nothing kept.
      const size = frameSize(chunk);
      checkSize(size, 'response', this.maxSize);
      if (size === chunk.length) return [new Uint8Array(chunk)];
    }
    // A copy (a Buffer's slice() is a view): callers may reuse their read buffer.
    this.chunks.push(new Uint8Array(chunk));
    this.length += chunk.length;
    const frames: Uint8Array[] = [];
    while (this.length >= 6) {
      const size = frameSize(this.peek(6));
      checkSize(size, 'response', this.maxSize);
      if (this.length < size) break;
      frames.push(this.take(size));
    }
    return frames;
  }

  /** Copies the first n buffered bytes (n ≤ buffered) without consuming them. */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let off = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (off === n) break;
    }
    return out;
  }

  /** Removes and returns the first n buffered bytes (n ≤ buffered) as a fresh array. */
  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}
