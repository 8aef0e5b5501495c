/**
 * Transport over a TPM character device: `/dev/tpmrm0` (the kernel resource manager), or any
 * character device speaking raw TPM frames (a PTY in front of swtpm in tests).
 *
 * The fd is opened O_NONBLOCK and every read/write goes through the libuv threadpool, so the
 * event loop never blocks and no threadpool thread waits indefinitely:
 * - Linux tpm-dev (O_NONBLOCK): write() queues the command and returns; read() returns 0 until
 *   the response is ready (or briefly waits on the driver's buffer lock while the chip works).
 * - A PTY: read() fails with EAGAIN until bytes arrive.
 * Both are polled with a short back-off (≤ 10 ms). Node cannot wait for readiness on such an fd
 * (net.Socket refuses it: libuv classifies it as a FILE), so polling is the portable way.
 *
 * After a timeout/abort the two kinds differ:
 * - tpm-dev: closing the fd discards the pending response (the driver's buffer is per open
 *   file), so the fd is closed and a fresh one opened for the next command. On /dev/tpmrm0 the
 *   close also flushes every transient object and session loaded through that fd.
 * - a TTY keeps unread input across close/reopen, so closing would not help: the fd is kept and
 *   the late response is read and discarded before the next command is written.
 */
import { constants, promises as fsp } from 'node:fs';
import { isatty } from 'node:tty';
import { pause, QueuedTransport, untilAborted, type TransportOptions } from './base.js';
import { ResponseFramer } from './framing.js';
import { TpmTransportError } from './types.js';

export const DEFAULT_DEVICE_PATH = '/dev/tpmrm0';

export interface DeviceTransportOptions extends TransportOptions {
  /** Character device path (default `/dev/tpmrm0`). */
  path?: string;
  /** Longest pause between polls of a device that has not answered yet, in ms (default 10). */
  maxPollIntervalMs?: number;
}

/** Read size: the Linux driver's TPM_BUFSIZE, the largest response a TPM gives. */
const READ_SIZE = 4096;
/** Node skips the syscall for an empty buffer, so the zero-length write uses a 1-byte one. */
const PROBE_BUF = new Uint8Array(1);

interface OpenDevice {
  fh: fsp.FileHandle;
  tty: boolean;
  framer: ResponseFramer;
  /** Commands written whose responses have not been read yet (only ever > 1 on a TTY). */
  outstanding: number;
  /** Settles when the last exchange on this fd has stopped touching it (TTY only). */
  idle: Promise<void>;
  dead: boolean;
  /** Per fd: a read abandoned in the threadpool may still write into it. */
  buf: Uint8Array;
}

function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export class DeviceTransport extends QueuedTransport {
  readonly path: string;
  readonly description: string;
  /** Each response is a new array from the framer (framing.ts), kept by nobody here. */
  readonly freshResponses = true;
  private readonly maxPollMs: number;
  private dev: OpenDevice | undefined;

  constructor(opts: DeviceTransportOptions | string = {}) {
    const o = typeof opts === 'string' ? { path: opts } : opts;
    super(o);
    this.path = o.path ?? DEFAULT_DEVICE_PATH;
    if (typeof this.path !== 'string' || this.path === '') throw new TypeError('device path must be a non-empty string');
    this.description = `device:${this.path}`;
    this.maxPollMs = o.maxPollIntervalMs ?? 10;
    if (!(this.maxPollMs >= 1 && this.maxPollMs <= 1000)) throw new RangeError('maxPollIntervalMs must be in [1, 1000]');
  }

  protected async exchange(command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      let dev = this.dev;
      if (!dev) {
        dev = await this.open(signal);
        if (this.closed) {
          this.discard(dev);
          throw new TpmTransportError('CLOSED', `transport ${this.description} closed`);
        }
        this.dev = dev;
      }
      if (!dev.tty) return this.run(dev, command, signal);
      // The previous (abandoned) exchange may still be finishing a poll on this fd, and may
      // give the fd up (garbage in the late response): then start over with a fresh one.
      await untilAborted(dev.idle, signal);
      if (dev.dead) continue;
      const run = this.run(dev, command, signal);
      dev.idle = run.then(
        () => {},
        () => {},
      );
      return run;
    }
  }

  private async run(dev: OpenDevice, command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    // tpm-dev: give up the fd at once, even if a threadpool read is still waiting in the driver.
    const onAbort = (): void => {
      if (!dev.tty) this.discard(dev);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      // TTY: late responses of abandoned commands come first; read and drop them.
      while (dev.outstanding > 0) await this.readFrame(dev, signal);
      await this.write(dev, command, signal);
      return await this.readFrame(dev, signal);
    } catch (e) {
      if (e !== signal.reason) this.discard(dev); // IO or PROTOCOL: this fd's byte stream is not trustworthy
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async open(signal: AbortSignal): Promise<OpenDevice> {
    let fh: fsp.FileHandle;
    try {
      // O_NOCTTY: a PTY must never become our controlling terminal.
      fh = await fsp.open(this.path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    } catch (e) {
      throw this.openError(e);
    }
    try {
      const st = await fh.stat();
      if (!st.isCharacterDevice()) throw new TpmTransportError('IO', `${this.path} is not a character device`);
      const dev: OpenDevice = {
        fh,
        tty: isatty(fh.fd),
        framer: new ResponseFramer(this.maxFrameSize),
        outstanding: 0,
        idle: Promise.resolve(),
        dead: false,
        buf: new Uint8Array(READ_SIZE),
      };
      if (dev.tty) await this.flushInput(dev);
      if (signal.aborted) throw signal.reason;
      return dev;
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  private openError(e: unknown): TpmTransportError {
    const code = errnoOf(e);
    switch (code) {
      case 'ENOENT':
        return new TpmTransportError('IO', `no TPM device at ${this.path}`, { cause: e });
      case 'EACCES':
      case 'EPERM':
        return new TpmTransportError(
          'IO',
          `permission denied opening ${this.path} (needs root or membership of the group owning it, usually tss)`,
          { cause: e },
        );
      case 'EBUSY':
        return new TpmTransportError(
          'BUSY',
          `${this.path} is busy: another process has it open (/dev/tpm0 allows one user; /dev/tpmrm0 allows many)`,
          { cause: e },
        );
      default:
        return new TpmTransportError('IO', `cannot open ${this.path}: ${code ?? String(e)}`, { cause: e });
    }
  }

  /** A fresh TTY may hold bytes from an earlier user of the line; they answer no command of ours. */
  private async flushInput(dev: OpenDevice): Promise<void> {
    for (let i = 0; i < 64; i++) {
      const n = await this.readOnce(dev);
      if (n === 'again' || n === 0) return;
    }
  }

  /** One non-blocking read into dev.buf: bytes read, or 'again' (EAGAIN) when none are ready. */
  private async readOnce(dev: OpenDevice): Promise<number | 'again'> {
    try {
      const { bytesRead } = await dev.fh.read(dev.buf, 0, dev.buf.length, null);
      return bytesRead;
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return 'again';
      throw this.ioError('read from', e);
    }
  }

  private async write(dev: OpenDevice, command: Uint8Array, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw signal.reason;
      let written: number;
      try {
        // One write per command: tpm-dev takes exactly one command per write().
        ({ bytesWritten: written } = await dev.fh.write(command, 0, command.length, null));
      } catch (e) {
        const code = errnoOf(e);
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
          await pause(this.pollDelay(attempt), signal); // TTY output buffer full: the peer is slow
          continue;
        }
        if (code === 'EBUSY') {
          throw new TpmTransportError('BUSY', `${this.path} still holds an unread response (EBUSY on write)`, { cause: e });
        }
        throw this.ioError('write to', e);
      }
      if (written !== command.length) {
        throw new TpmTransportError('IO', `short write to ${this.path}: ${written} of ${command.length} bytes`);
      }
      dev.outstanding++;
      return;
    }
  }

  /**
   * Reads until at least one outstanding response is complete and returns the last one
   * completed. Right after a write with nothing else outstanding, that is the write's response;
   * while draining late responses on a TTY the caller drops what it returns.
   */
  private async readFrame(dev: OpenDevice, signal: AbortSignal): Promise<Uint8Array> {
    for (let attempt = 0; ; ) {
      const n = await this.readOnce(dev);
      if (n === 'again' || n === 0) {
        // tpm-dev reads 0 until the response is ready; a TTY reads 0 when hung up (or VMIN=0).
        if (n === 0 && dev.tty) await this.checkHangup(dev);
        // Checked only when idle: bytes already read must reach the framer, so that an
        // abandoned response is accounted for even if it arrives as we give up.
        if (signal.aborted) throw signal.reason;
        await pause(this.pollDelay(attempt++), signal);
        continue;
      }
      attempt = 0;
      const frames = dev.framer.push(dev.buf.subarray(0, n));
      if (frames.length > 0) {
        if (frames.length > dev.outstanding) {
          throw new TpmTransportError('PROTOCOL', `${this.path} sent a response to no command`);
        }
        dev.outstanding -= frames.length;
        if (dev.outstanding === 0 && dev.framer.buffered > 0) {
          throw new TpmTransportError('PROTOCOL', `${this.path} sent ${dev.framer.buffered} bytes after the response`);
        }
        return frames[frames.length - 1]!;
      }
    }
  }

  /**
   * A TTY whose other end is gone reads as 0 bytes (EOF), but so does a live one set to VMIN=0;
   * only a write tells them apart: a hung-up TTY fails even an empty write with EIO.
   */
  private async checkHangup(dev: OpenDevice): Promise<void> {
    try {
      await dev.fh.write(PROBE_BUF, 0, 0, null);
    } catch (e) {
      throw this.ioError('read from', e);
    }
  }

  /** 0, 0 (next loop turn), then 1, 1, 2, 2, 4, 4, ... ms up to maxPollIntervalMs. */
  private pollDelay(attempt: number): number {
    if (attempt < 2) return 0;
    return Math.min(this.maxPollMs, 2 ** Math.floor((attempt - 2) / 2));
  }

  private ioError(what: string, e: unknown): TpmTransportError {
    const code = errnoOf(e);
    const hint = code === 'EIO' ? ' (the other end of the terminal hung up)' : '';
    return new TpmTransportError('IO', `cannot ${what} ${this.path}: ${code ?? String(e)}${hint}`, { cause: e });
  }

  /** Forgets the fd; the next command opens a fresh one. */
  private discard(dev: OpenDevice): void {
    if (dev.dead) return;
    dev.dead = true;
    if (this.dev === dev) this.dev = undefined;
    // FileHandle.close() waits for an operation still running in the threadpool, then closes;
    // the fd number cannot be reused by another open while that read is pending.
    dev.fh.close().catch(() => {});
  }

  protected async dispose(): Promise<void> {
    const dev = this.dev;
    this.dev = undefined;
    if (!dev || dev.dead) return;
    dev.dead = true;
    const closing = dev.fh.close().catch(() => {});
    // Do not let close() hang on a driver read that is still waiting for the chip.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closing, new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
  }
}
