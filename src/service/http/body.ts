/**
 * Request bodies read under limits: a cap on size, a cap on the pause between two pieces
 * (a stalled client frees its place), a minimum rate (a client that trickles a byte now and
 * then frees it too), the request's AbortSignal, and — for JSON bodies, which are held in
 * memory — a budget shared by all requests, so many large bodies at once cannot exhaust memory.
 */
import type { IncomingMessage } from 'node:http';
import { badRequest, payloadTooLarge, requestTimeout, serviceBusy, unsupportedMediaType } from '../protocol/errors.js';
import { MEDIA_JSON, MEDIA_STREAM } from '../protocol/routes.js';

/** The client closed the connection before the request was complete. */
export class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
  constructor() {
    super('the client closed the connection');
  }
}

/** Bytes of memory that all in-memory bodies together may use. */
export class ByteBudget {
  private used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

export type MediaType = 'json' | 'octet-stream' | 'none';

/** The body's media type from Content-Type (parameters other than charset=utf-8 refused). */
export function mediaType(req: IncomingMessage): MediaType {
  const ct = req.headers['content-type'];
  const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (ct === undefined) {
    if (hasBody) throw unsupportedMediaType('a request body needs a Content-Type: application/json or application/octet-stream');
    return 'none';
  }
  const m = /^([a-z]+\/[a-z0-9.+-]+)\s*(?:;\s*charset=(?:"utf-8"|utf-8)\s*)?$/i.exec(ct);
  const type = m?.[1]!.toLowerCase();
  if (type === MEDIA_JSON) return 'json';
  if (type === MEDIA_STREAM && !/charset/i.test(ct)) return 'octet-stream';
  throw unsupportedMediaType(`Content-Type ${JSON.stringify(ct.slice(0, 60))} is neither application/json nor application/octet-stream`);
}

/** Declared Content-Length, if any (Node's parser has already refused malformed ones). */
export function declaredLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  return v === undefined ? undefined : Number(v);
}

export interface ReadLimits {
  /** Longest pause between two pieces, ms. */
  idleMs: number;
  /** Bytes per second the body must keep up once `rateGraceMs` has passed; 0 or absent: none. */
  minBytesPerSec?: number;
  /** The grace, and the window the rate is then measured over, ms. */
  rateGraceMs?: number;
  signal: AbortSignal;
}

/**
 * The minimum rate, measured over successive windows of `windowMs` of time spent waiting for
 * the client (time the server spends on the pieces, e.g. hashing them in the TPM, is not the
 * client's to make up), the first window being the grace: a window that ends with fewer than
 * its share of bytes ends the request. Windows follow each other whether or not a piece comes,
 * so a burst does not buy a long pause.
 */
class RateMeter {
  private waited = 0;
  private bytes = 0;
  private readonly need: number;

  constructor(
    private readonly perSec: number,
    private readonly windowMs: number,
  ) {
    this.need = Math.ceil((perSec * windowMs) / 1000);
  }

  /** Waiting time left in this window (undefined: no minimum). */
  get windowLeft(): number | undefined {
    return this.perSec > 0 && this.windowMs > 0 ? Math.max(0, this.windowMs - this.waited) : undefined;
  }

  /** A wait of `ms` brought `n` bytes; throws at the end of a window short of its share. */
  record(ms: number, n: number): void {
    if (this.windowLeft === undefined) return;
    this.waited += ms;
    this.bytes += n;
    if (this.waited < this.windowMs) return;
    if (this.bytes < this.need) throw this.tooSlow();
    this.waited = 0;
    this.bytes = 0;
  }

  private tooSlow(): Error {
    return requestTimeout(`the request body arrived too slowly: ${this.bytes} bytes in ${this.windowMs} ms, below the minimum of ${this.perSec} bytes/s`);
  }
}

function rateMeter(limits: ReadLimits): RateMeter {
  return new RateMeter(limits.minBytesPerSec ?? 0, limits.rateGraceMs ?? 0);
}

/** The next piece of the body, or null at its end. */
function nextPiece(req: IncomingMessage, limits: ReadLimits, rate: RateMeter): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let rateTimer: NodeJS.Timeout | undefined;
    let waitingFrom = performance.now();
    /** Waiting time since the last call. */
    const waited = (): number => {
      const now = performance.now();
      const ms = now - waitingFrom;
      waitingFrom = now;
      return ms;
    };
    const done = (): void => {
      settled = true;
      clearTimeout(timer);
      clearTimeout(rateTimer);
      req.off('readable', tryRead);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
      limits.signal.removeEventListener('abort', onAbort);
    };
    const fail = (e: unknown): void => {
      done();
      reject(e);
    };
    const tryRead = (): void => {
      const c = req.read() as Buffer | null;
      if (c !== null) {
        done();
        try {
          // The whole body is here: nothing left to wait for, so no verdict on its pace.
          if (!req.complete) rate.record(waited(), c.length);
        } catch (e) {
          return reject(e);
        }
        resolve(c);
      }
    };
    const onEnd = (): void => {
      done();
      resolve(null);
    };
    const onGone = (): void => fail(new ClientGoneError());
    const onClose = (): void => {
      if (!req.complete) onGone();
    };
    const onAbort = (): void => fail(limits.signal.reason);
    // Timers run before the poll phase reads sockets: after a busy spell of ours, data that has
    // arrived in the meantime gets its turn before the client is blamed.
    const later = (f: () => void) => (): void => {
      setImmediate(() => settled || f());
    };
    const timer = setTimeout(
      later(() => fail(requestTimeout(`the request body stalled: nothing arrived for ${limits.idleMs} ms`))),
      limits.idleMs,
    );
    const armRate = (): void => {
      const left = rate.windowLeft;
      if (left === undefined) return;
      rateTimer = setTimeout(
        later(() => {
          try {
            rate.record(waited(), 0);
          } catch (e) {
            return fail(e);
          }
          armRate();
        }),
        left,
      );
    };
    armRate();
    if (limits.signal.aborted) return onAbort();
    if (req.readableEnded) return onEnd();
    if (req.destroyed && !req.complete) return onGone();
    req.on('readable', tryRead);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onClose);
    limits.signal.addEventListener('abort', onAbort, { once: true });
    tryRead();
  });
}

/**
 * What is left of a body that has wholly arrived (undefined: more is to come, or the request
 * was aborted or destroyed — the waiting path decides). Taken at once, without listeners or
 * timers: nothing is waited for, so no stall, pace or 'end' to watch.
 */
function completeRest(req: IncomingMessage, signal: AbortSignal): Buffer[] | undefined {
  if (!req.complete || req.destroyed || signal.aborted) return undefined;
  const rest: Buffer[] = [];
  for (let c = req.read() as Buffer | null; c !== null; c = req.read() as Buffer | null) rest.push(c);
  return rest;
}

/** The body as it arrives, at most `maxBytes` (0: unlimited). */
export async function* bodyPieces(req: IncomingMessage, limits: ReadLimits & { maxBytes: number }): AsyncGenerator<Uint8Array> {
  const declared = declaredLength(req);
  if (limits.maxBytes > 0 && declared !== undefined && declared > limits.maxBytes) {
    throw payloadTooLarge(`the body of ${declared} bytes is over the limit of ${limits.maxBytes}`);
  }
  let total = 0;
  const rate = rateMeter(limits);
  for (;;) {
    const piece = await nextPiece(req, limits, rate);
    if (piece === null) return;
    total += piece.length;
    if (limits.maxBytes > 0 && total > limits.maxBytes) throw payloadTooLarge(`the body is over the limit of ${limits.maxBytes} bytes`);
    yield new Uint8Array(piece.buffer, piece.byteOffset, piece.length);
  }
}

/**
 * Reads a whole (JSON) body into memory, charged to `budget` until `release` is called — the
 * caller releases when the request is over, since an inline message waits in the TPM queue.
 */
export async function readWholeBody(
  req: IncomingMessage,
  limits: ReadLimits & { maxBytes: number; budget: ByteBudget },
): Promise<{ bytes: Uint8Array; release: () => void }> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limits.maxBytes) throw payloadTooLarge(`the body of ${declared} bytes is over the limit of ${limits.maxBytes}`);
  const pieces: Buffer[] = [];
  let total = 0;
  let released = false;
  const release = (): void => {
    if (!released) limits.budget.give(total);
    released = true;
  };
  const add = (piece: Buffer): void => {
    if (total + piece.length > limits.maxBytes) throw payloadTooLarge(`the body is over the limit of ${limits.maxBytes} bytes`);
    if (!limits.budget.take(piece.length)) throw serviceBusy('too many large requests are being handled at once');
    total += piece.length;
    pieces.push(piece);
  };
  const rate = rateMeter(limits);
  // A body that came in the same read as the headers is parsed right after the request's
  // handler (and the ticks it queued) returns: once that read is done it is whole, and is taken
  // without listeners or timers.
  if (!req.complete) await new Promise(setImmediate);
  try {
    for (;;) {
      const rest = completeRest(req, limits.signal);
      if (rest !== undefined) {
        rest.forEach(add);
        break;
      }
      const piece = await nextPiece(req, limits, rate);
      if (piece === null) break;
      add(piece);
    }
  } catch (e) {
    release();
    throw e;
  }
  return { bytes: new Uint8Array(Buffer.concat(pieces, total)), release };
}

/** GET and DELETE carry no body; one that does is refused rather than ignored. */
export function expectNoBody(req: IncomingMessage): void {
  const len = req.headers['content-length'];
  if ((len !== undefined && len !== '0') || req.headers['transfer-encoding'] !== undefined) throw badRequest('this request takes no body');
}
