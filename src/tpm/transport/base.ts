/**
 * What every transport shares: one command at a time (a FIFO queue), a deadline and the
 * caller's AbortSignal on every command, command-frame checks, and close(). Subclasses implement
 * one exchange; they learn of a timeout/abort/close through the AbortSignal handed to
 * `exchange`, whose `reason` is the TpmTransportError that `send` rejects with.
 */
import { checkCommand } from './framing.js';
import { DEFAULT_TIMEOUT_MS, MAX_FRAME_SIZE, TpmTransportError, type SendOptions, type Transport } from './types.js';

export interface TransportOptions {
  /** Default deadline per command in ms (120 000). */
  timeoutMs?: number;
  /** Largest command/response frame accepted, in bytes (65 536). */
  maxFrameSize?: number;
}

/** setTimeout fires at once for delays ≥ 2³¹ ms, which would turn a long deadline into none. */
const MAX_TIMER_MS = 0x7fffffff;

function checkTimeout(ms: number, what: string): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMER_MS) {
    throw new RangeError(`${what} must be a number of milliseconds in (0, ${MAX_TIMER_MS}], got ${String(ms)}`);
  }
  return ms;
}

/** One command from send() until it is answered or given up. */
class Command {
  done = false;
  timer: NodeJS.Timeout | undefined;
  /** The caller's signal and our listener on it, removed when the command ends. */
  userSignal: AbortSignal | undefined;
  onUserAbort: (() => void) | undefined;

  constructor(
    readonly frame: Uint8Array,
    readonly resolve: (response: Uint8Array) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  /** Marks the command ended; false when it already was. */
  end(): boolean {
    if (this.done) return false;
    this.done = true;
    clearTimeout(this.timer);
    if (this.onUserAbort) this.userSignal!.removeEventListener('abort', this.onUserAbort);
    return true;
  }
}

export abstract class QueuedTransport implements Transport {
  abstract readonly description: string;
  protected readonly timeoutMs: number;
  protected readonly maxFrameSize: number;
  /** Commands waiting for their turn, oldest first; a command given up is taken out at once. */
  private readonly queue: Command[] = [];
  /** The command whose exchange is running. */
  private running: Command | undefined;
  /**
   * The signal handed to `exchange`: shared by consecutive commands until one is given up (then
   * a fresh one), because an AbortController per command is a measurable part of a fast TPM's
   * round trip. Only one exchange runs at a time, so it only ever fires for the running one.
   */
  private ctl: AbortController | undefined;
  private isClosed = false;
  private closing: Promise<void> | undefined;

  constructor(opts: TransportOptions = {}) {
    this.timeoutMs = checkTimeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs');
    this.maxFrameSize = opts.maxFrameSize ?? MAX_FRAME_SIZE;
    if (!Number.isInteger(this.maxFrameSize) || this.maxFrameSize < 4096 || this.maxFrameSize > 16 * 1024 * 1024) {
      throw new RangeError(`maxFrameSize must be an integer in [4096, 16 MiB], got ${String(opts.maxFrameSize)}`);
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(command: Uint8Array, opts: SendOptions = {}): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new TpmTransportError('CLOSED', `transport ${this.description} closed`));
    let timeoutMs: number;
    let userSignal: AbortSignal | undefined;
    try {
      checkCommand(command, this.maxFrameSize);
      timeoutMs = opts.timeoutMs === undefined ? this.timeoutMs : checkTimeout(opts.timeoutMs, 'timeoutMs');
      userSignal = opts.signal;
    } catch (e) {
      return Promise.reject(e); // as from an async function: a bad argument is a rejection, never a throw
    }
    if (userSignal?.aborted) return Promise.reject(this.abortedError(userSignal));
    return new Promise<Uint8Array>((resolve, reject) => {
      // Our own copy: the caller may reuse its buffer while the command waits in the queue. A
      // Buffer, because streams turn anything else into one (and a small typed array's
      // `.buffer`, which that needs, costs a copy of its own).
      const c = new Command(Buffer.from(command), resolve, reject);
      c.timer = setTimeout(
        () => this.giveUp(c, new TpmTransportError('TIMEOUT', `no response from ${this.description} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      if (userSignal) {
        c.userSignal = userSignal;
        c.onUserAbort = () => this.giveUp(c, this.abortedError(userSignal));
        userSignal.addEventListener('abort', c.onUserAbort, { once: true });
      }
      this.queue.push(c);
      if (this.running === undefined) this.next();
    });
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.isClosed = true;
      const err = new TpmTransportError('CLOSED', `transport ${this.description} closed`);
      if (this.running) this.giveUp(this.running, err);
      for (const c of this.queue.splice(0)) this.giveUp(c, err);
      this.closing = this.dispose();
    }
    return this.closing;
  }

  private abortedError(userSignal: AbortSignal): TpmTransportError {
    return new TpmTransportError('ABORTED', `command to ${this.description} aborted`, { cause: userSignal.reason });
  }

  /** Starts the oldest queued command, if nothing is running. */
  private next(): void {
    if (this.running !== undefined || this.isClosed) return;
    const c = this.queue.shift();
    if (c === undefined) return;
    this.running = c;
    const ctl = (this.ctl ??= new AbortController());
    let response: Promise<Uint8Array>;
    try {
      response = this.exchange(c.frame, ctl.signal);
    } catch (e) {
      response = Promise.reject(e);
    }
    const settle = (answer: () => void): void => {
      if (!c.end()) return; // given up before: its caller has its answer, the queue moved on
      this.running = undefined;
      answer();
      this.next();
    };
    response.then(
      (r) => settle(() => c.resolve(r)),
      (e: unknown) => settle(() => c.reject(e)),
    );
  }

  /** Timeout, the caller's abort, or close(): answers the caller now, whatever the peer does. */
  private giveUp(c: Command, err: TpmTransportError): void {
    if (!c.end()) return;
    c.reject(err);
    if (c !== this.running) {
      // Queued: it leaves the queue; the running command keeps its place ahead of the others.
      const i = this.queue.indexOf(c);
      if (i >= 0) this.queue.splice(i, 1);
      return;
    }
    this.running = undefined;
    const ctl = this.ctl!;
    this.ctl = undefined;
    // The exchange learns of it here (synchronously) and makes sure its late response, if any,
    // never reaches the next command, which may start at once.
    ctl.abort(err);
    this.next();
  }

  /**
   * Sends one checked command frame and returns its response frame. When `signal` fires the
   * caller has already been answered; the implementation must make sure that whatever the peer
   * still sends for this command never reaches a later one (reconnect, reopen, or drain).
   * Consecutive commands may get the same signal (it fires only for the running command, and
   * then the next one gets a fresh signal): remove listeners added to it when the exchange ends.
   */
  protected abstract exchange(command: Uint8Array, signal: AbortSignal): Promise<Uint8Array>;

  /** Releases the connection/device; called once by close() after in-flight commands failed. */
  protected abstract dispose(): Promise<void>;
}

/** Resolves after `ms` (0: next turn of the event loop), or early when `signal` fires. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      if (ms > 0) clearTimeout(t as NodeJS.Timeout);
      else clearImmediate(t as NodeJS.Immediate);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t: NodeJS.Timeout | NodeJS.Immediate = ms > 0 ? setTimeout(done, ms) : setImmediate(done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Rejects with the signal's reason when it fires, otherwise follows `p`. */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
