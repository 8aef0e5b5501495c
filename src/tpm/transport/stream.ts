/**
 * Transport over a byte stream carrying raw TPM frames (no MSSIM framing): a socket to swtpm's
 * `--server`, or the socket end of `swtpm chardev --fd N`.
 *
 * With a connector (sockets) a timeout/abort/error destroys the connection and the next command
 * connects afresh, so a late response dies with the old connection. With a fixed stream there
 * is nothing to reconnect: after a timeout/abort the late response is awaited and dropped before
 * the next command is written; after a framing error or EOF the stream is unusable.
 */
import type { Duplex } from 'node:stream';
import { QueuedTransport, untilAborted, type TransportOptions } from './base.js';
import { ResponseFramer } from './framing.js';
import { TpmTransportError } from './types.js';

/** Opens a new connection; must destroy it and reject if `signal` fires first. */
export type Connector = (signal: AbortSignal) => Promise<Duplex>;

export interface StreamTransportOptions extends TransportOptions {
  description?: string;
}

/** The connection an exchange is using, for the abort listener of its signal. */
interface Slot {
  conn: Connection | undefined;
}

interface Waiter {
  resolve(frame: Uint8Array): void;
  reject(e: unknown): void;
}

/** One stream plus the framing state of the bytes read from it. */
class Connection {
  readonly framer: ResponseFramer;
  /** Commands written whose responses have not arrived (> 1 only after an abandoned command). */
  outstanding = 0;
  broken: TpmTransportError | undefined;
  /** Waits for the response that brings `outstanding` to 0. */
  private waiter: Waiter | undefined;
  /** Waits for `outstanding` to reach 0 before a new command is written. */
  private drainWaiters: Waiter[] = [];

  constructor(
    readonly stream: Duplex,
    maxFrameSize: number,
    private readonly description: string,
  ) {
    this.framer = new ResponseFramer(maxFrameSize);
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    // Kept for the stream's whole life: an 'error' without a listener would crash the process.
    stream.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer | string): void => {
    if (this.broken) return;
    if (typeof chunk === 'string') {
      this.fail(new TpmTransportError('PROTOCOL', `${this.description} is in text mode (setEncoding was called)`));
      return;
    }
    let frames: Uint8Array[];
    try {
      frames = this.framer.push(chunk);
    } catch (e) {
      this.fail(e as TpmTransportError);
      return;
    }
    for (let i = 0; i < frames.length; i++) {
      if (this.outstanding === 0) {
        this.fail(new TpmTransportError('PROTOCOL', `${this.description} sent a response to no command`));
        return;
      }
      this.outstanding--;
      if (this.outstanding > 0) continue; // late response of an abandoned command: dropped
      if (i < frames.length - 1 || this.framer.buffered > 0) {
        this.fail(new TpmTransportError('PROTOCOL', `${this.description} sent bytes after the response`));
        return;
      }
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve(frames[i]!);
      for (const d of this.drainWaiters.splice(0)) d.resolve(new Uint8Array(0));
    }
  };

  private readonly onEnd = (): void => {
    const partial = this.framer.buffered;
    const expected = this.framer.expected;
    const detail =
      partial > 0 ? ` after ${partial} byte(s) of a ${expected ?? '?'}-byte response` : this.outstanding > 0 ? ' before responding' : '';
    this.fail(new TpmTransportError('IO', `${this.description} closed the connection${detail}`));
  };

  private readonly onError = (e: Error): void => {
    const code = (e as { code?: unknown }).code;
    this.fail(new TpmTransportError('IO', `${this.description}: ${typeof code === 'string' ? code : e.message}`, { cause: e }));
  };

  fail(e: TpmTransportError): void {
    if (this.broken) return;
    this.broken = e;
    this.waiter?.reject(e);
    this.waiter = undefined;
    for (const d of this.drainWaiters.splice(0)) d.reject(e);
  }

  /** Resolves when no response is outstanding. */
  drained(): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve: () => resolve(), reject }));
  }

  /** Writes a command; resolves with its response. */
  request(command: Uint8Array): Promise<Uint8Array> {
    if (this.broken) return Promise.reject(this.broken);
    const response = new Promise<Uint8Array>((resolve, reject) => (this.waiter = { resolve, reject }));
    this.outstanding++;
    this.stream.write(command, this.onWritten);
    return response;
  }

  private readonly onWritten = (err: Error | null | undefined): void => {
    if (err) this.fail(new TpmTransportError('IO', `cannot write to ${this.description}: ${err.message}`, { cause: err }));
  };

  /** The current command was given up; its response, if it comes, will be dropped. */
  abandon(): void {
    this.waiter = undefined;
  }

  destroy(): void {
    this.fail(new TpmTransportError('CLOSED', `connection to ${this.description} closed`));
    this.stream.destroy();
  }
}

export class StreamTransport extends QueuedTransport {
  readonly description: string;
  /** Each response is a new array from the framer (framing.ts), kept by nobody here. */
  readonly freshResponses = true;
  private conn: Connection | undefined;
  private readonly connector: Connector | undefined;
  /** The signal of the running (or last) exchange and its slot. */
  private watched: { signal: AbortSignal; slot: Slot } | undefined;

  /**
   * `source`: a connected stream, which the transport then owns (close() destroys it), or a
   * connector called lazily for the first command and again after any failure.
   */
  constructor(source: Duplex | Connector, opts: StreamTransportOptions = {}) {
    super(opts);
    this.description = opts.description ?? 'stream';
    if (typeof source === 'function') {
      this.connector = source;
    } else {
      this.conn = new Connection(source, this.maxFrameSize, this.description);
    }
  }

  protected exchange(command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const slot = this.slotOf(signal);
    slot.conn = undefined;
    const conn = this.conn;
    // The usual case, with nothing to wait for before the write: no await, no extra listener.
    if (conn && !conn.broken && conn.outstanding === 0 && !signal.aborted) return this.request(conn, command, signal, slot);
    return this.exchangeSlowly(command, signal, slot);
  }

  private async exchangeSlowly(command: Uint8Array, signal: AbortSignal, slot: Slot): Promise<Uint8Array> {
    const conn = await this.connection(signal);
    slot.conn = conn;
    if (conn.outstanding > 0) {
      try {
        await untilAborted(conn.drained(), signal);
      } catch (e) {
        slot.conn = undefined;
        if (e !== signal.reason && this.connector) this.drop(conn);
        throw e;
      }
    }
    if (signal.aborted) throw signal.reason;
    return this.request(conn, command, signal, slot);
  }

  private request(conn: Connection, command: Uint8Array, signal: AbortSignal, slot: Slot): Promise<Uint8Array> {
    slot.conn = conn;
    return conn.request(command).then(
      (response) => {
        slot.conn = undefined;
        return response;
      },
      (e: unknown) => {
        slot.conn = undefined;
        if (e !== signal.reason && this.connector) this.drop(conn);
        throw e;
      },
    );
  }

  /**
   * One abort listener per signal, not per command: consecutive commands share a signal until
   * one is given up. The slot names the connection of the command running when it fires.
   */
  private slotOf(signal: AbortSignal): Slot {
    if (this.watched?.signal === signal) return this.watched.slot;
    const slot: Slot = { conn: undefined };
    this.watched = { signal, slot };
    signal.addEventListener(
      'abort',
      () => {
        const conn = slot.conn;
        slot.conn = undefined;
        if (this.watched?.slot === slot) this.watched = undefined;
        if (!conn) return;
        if (this.connector) this.drop(conn);
        else conn.abandon();
      },
      { once: true },
    );
    return slot;
  }

  private async connection(signal: AbortSignal): Promise<Connection> {
    const cur = this.conn;
    if (cur && !cur.broken) return cur;
    if (!this.connector) {
      throw new TpmTransportError('IO', `${this.description} is unusable: ${cur?.broken?.message ?? 'no stream'}`, {
        cause: cur?.broken,
      });
    }
    if (cur) this.drop(cur);
    const stream = await this.connector(signal);
    if (signal.aborted || this.closed) {
      stream.destroy();
      throw signal.reason ?? new TpmTransportError('CLOSED', `transport ${this.description} closed`);
    }
    return (this.conn = new Connection(stream, this.maxFrameSize, this.description));
  }

  private drop(conn: Connection): void {
    if (this.conn === conn) this.conn = undefined;
    conn.destroy();
  }

  protected async dispose(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    if (!conn) return;
    const closed = new Promise<void>((resolve) => {
      if (conn.stream.destroyed) resolve();
      else conn.stream.once('close', () => resolve());
    });
    conn.destroy();
    // A Duplex that never emits 'close' must not make close() hang.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
  }
}
