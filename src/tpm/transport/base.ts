/**
 * What every transport shares: one command at a time (a FIFO queue), a deadline and an
 * AbortSignal on every command, command-frame checks, and close(). Subclasses implement one
 * exchange; they learn of a timeout/abort/close through the AbortSignal handed to `exchange`,
 * whose `reason` is the TpmTransportError that `send` rejects with.
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

/**
 * One command's deadline: a signal that fires (with a TpmTransportError as its reason) on the
 * timeout, on the caller's signal, or on fail() (the transport closing), and a promise
 * rejecting then.
 */
class Deadline {
  private readonly ctl = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly unlisten: Array<() => void> = [];
  readonly failed: Promise<never>;

  constructor(timeoutMs: number, userSignal: AbortSignal | undefined, description: string) {
    this.failed = new Promise<never>((_, reject) => {
      this.ctl.signal.addEventListener('abort', () => reject(this.ctl.signal.reason), { once: true });
    });
    this.failed.catch(() => {}); // observed through race(); never an unhandled rejection
    const onUser = (): void =>
      this.fail(new TpmTransportError('ABORTED', `command to ${description} aborted`, { cause: userSignal?.reason }));
    this.timer = setTimeout(
      () => this.fail(new TpmTransportError('TIMEOUT', `no response from ${description} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    if (userSignal?.aborted) onUser();
    else if (userSignal) {
      userSignal.addEventListener('abort', onUser, { once: true });
      this.unlisten.push(() => userSignal.removeEventListener('abort', onUser));
    }
  }

  fail(err: TpmTransportError): void {
    if (!this.ctl.signal.aborted) this.ctl.abort(err);
  }

  get signal(): AbortSignal {
    return this.ctl.signal;
  }

  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }

  dispose(): void {
    clearTimeout(this.timer);
    for (const u of this.unlisten) u();
  }
}

export abstract class QueuedTransport implements Transport {
  abstract readonly description: string;
  protected readonly timeoutMs: number;
  protected readonly maxFrameSize: number;
  /** Settles when the last queued command has finished (never rejects). */
  private tail: Promise<void> = Promise.resolve();
  /** Deadlines of queued and running commands, failed by close(). (Not listeners on one shared
   * signal: 11+ concurrent commands would trip Node's MaxListeners warning.) */
  private readonly pending = new Set<Deadline>();
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

  async send(command: Uint8Array, opts: SendOptions = {}): Promise<Uint8Array> {
    if (this.closed) throw new TpmTransportError('CLOSED', `transport ${this.description} closed`);
    checkCommand(command, this.maxFrameSize);
    const timeoutMs = opts.timeoutMs === undefined ? this.timeoutMs : checkTimeout(opts.timeoutMs, 'timeoutMs');
    // Our own copy: the caller may reuse its buffer while the command waits in the queue.
    const cmd = command.slice();
    const deadline = new Deadline(timeoutMs, opts.signal, this.description);
    this.pending.add(deadline);

    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    let ourTurn = false;
    try {
      await deadline.race(prev);
      ourTurn = true;
      return await deadline.race(this.exchange(cmd, deadline.signal));
    } finally {
      this.pending.delete(deadline);
      deadline.dispose();
      // Giving up while queued must not let the next command overtake the running one.
      if (ourTurn) release();
      else void prev.then(release);
    }
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.isClosed = true;
      const err = new TpmTransportError('CLOSED', `transport ${this.description} closed`);
      for (const d of this.pending) d.fail(err);
      this.closing = this.dispose();
    }
    return this.closing;
  }

  /**
   * Sends one checked command frame and returns its response frame. When `signal` fires the
   * caller has already been answered; the implementation must make sure that whatever the peer
   * still sends for this command never reaches a later one (reconnect, reopen, or drain).
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
