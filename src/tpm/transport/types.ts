/**
 * The transport contract: raw TPM command bytes in, raw response bytes out. A transport knows
 * nothing of TPM structures beyond the 10-byte header (tag, size, code) it needs for framing.
 */

export interface SendOptions {
  /** Aborts the command; `send` rejects with code ABORTED. */
  signal?: AbortSignal;
  /**
   * Deadline for the whole `send`, counted from the call (time waiting behind other commands
   * of the same transport included). Default: the transport's `timeoutMs` (120 s unless set).
   */
  timeoutMs?: number;
}

export interface Transport {
  /**
   * Sends one complete command frame and resolves with the complete response frame. Commands
   * given concurrently are queued and run one at a time, in call order.
   */
  send(command: Uint8Array, opts?: SendOptions): Promise<Uint8Array>;
  /** Fails queued and in-flight commands with CLOSED and releases the connection / device. */
  close(): Promise<void>;
  /** Human-readable target, e.g. `device:/dev/tpmrm0`, `swtpm:unix:/tmp/x/swtpm.sock`. */
  readonly description: string;
  /**
   * A promise that every response `send` resolves with is a new Uint8Array of its own: not a view
   * of memory the transport (or anyone else) keeps, writes to or hands out again. The executor
   * (Tpm) then decodes byte fields as views into it instead of copies. Leave it unset otherwise.
   */
  readonly freshResponses?: boolean;
}

export type TpmTransportErrorCode =
  /** The deadline passed before the response arrived. */
  | 'TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  /** The transport was closed. */
  | 'CLOSED'
  /** The OS reported an error (open, read, write, connect) or the peer hung up. */
  | 'IO'
  /** Bytes that are not a well-formed TPM frame (bad size field, trailing bytes, ...). */
  | 'PROTOCOL'
  /** The device is held by someone else (EBUSY). */
  | 'BUSY';

/** Every failure of a transport. Never a TPM response code: those arrive as response bytes. */
export class TpmTransportError extends Error {
  override readonly name = 'TpmTransportError';
  constructor(
    readonly code: TpmTransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Default deadline per command: RSA primary key generation takes many seconds on real chips. */
export const DEFAULT_TIMEOUT_MS = 120_000;

/** TPM command/response header: tag (2), size (4), code (4). */
export const TPM_HEADER_SIZE = 10;

/**
 * Largest frame accepted in either direction. TPMs use ≤ 4096 bytes (the Linux driver's
 * TPM_BUFSIZE); 64 KiB leaves room for simulators with bigger buffers while still rejecting a
 * garbage size field before anything is allocated for it.
 */
export const MAX_FRAME_SIZE = 64 * 1024;
