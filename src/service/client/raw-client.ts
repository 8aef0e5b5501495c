/**
 * The client side of the raw channel (docs/API.md "Raw TPM channel"), for whatever carries
 * frames from a guest: eve_tools_tpm2_tcti (cmd TCTI) and a vTPM-proxy daemon. Dials
 * `vsock:`/`unix:`/`tcp:` as the service client does, upgrades, and then either hands over the
 * socket or answers one frame at a time (`transact`). No dependencies beyond node: and
 * protocol/ (it is bundled into the container tools).
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseAddress } from '../protocol/address.js';
import { RAW_PROTOCOL } from '../protocol/raw.js';
import { ROUTES } from '../protocol/routes.js';

/** The longest HTTP answer head read before the frames begin. */
const MAX_HEAD = 8192;

/** Why the raw channel could not be opened: `status` 0 when the service was not reached or answered no HTTP. */
export class RawChannelError extends Error {
  override readonly name = 'RawChannelError';
  constructor(
    message: string,
    readonly status: number,
    readonly unreachable = false,
  ) {
    super(message);
  }
}

export async function dialService(address: string, timeoutMs = 10_000): Promise<Duplex> {
  const a = parseAddress(address, 'connect');
  try {
    if (a.kind === 'vsock') {
      const { connectVsock } = await import('../vsock/index.js');
      return await connectVsock(a.cid ?? 2, a.port, { timeoutMs });
    }
    return await new Promise<Duplex>((resolve, reject) => {
      const s: Socket = a.kind === 'unix' ? connect({ path: a.path }) : connect({ host: a.host, port: a.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  } catch (e) {
    throw new RawChannelError(`cannot reach the TPM service at ${address}: ${(e as Error).message}`, 0, true);
  }
}

/** Sends the upgrade on `s` and reads the answer's head; resolves with the bytes after it (frames). */
export function upgradeRaw(s: Duplex, secret: string | undefined): Promise<Buffer> {
  const auth = secret === undefined ? '' : `Authorization: Bearer ${secret}\r\n`;
  const { method, path } = ROUTES['raw-tpm'];
  s.write(`${method} ${path} HTTP/1.1\r\nHost: eve-tpm-service\r\nConnection: Upgrade\r\nUpgrade: ${RAW_PROTOCOL}\r\n${auth}\r\n`);
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const done = (e: RawChannelError | undefined, rest?: Buffer): void => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', onEnd);
      s.pause();
      if (e) reject(e);
      else resolve(rest!);
    };
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) {
        if (got.length > MAX_HEAD) done(new RawChannelError('the service sent no valid answer to the upgrade', 0));
        return;
      }
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(got.subarray(0, end).toString('latin1'))?.[1] ?? 0);
      if (status === 101) return done(undefined, got.subarray(end + 4));
      // An error answer: its JSON body (small, sent at once) says why.
      let message = `the service refused the raw channel (HTTP ${status})`;
      try {
        const e = (JSON.parse(got.subarray(end + 4).toString('utf8')) as { error?: { message?: string } }).error;
        if (e?.message) message = `${message}: ${e.message}`;
      } catch {
        // no JSON: the status says enough
      }
      done(new RawChannelError(message, status));
    };
    const onEnd = (): void => done(new RawChannelError('the service closed the connection during the upgrade', 0, true));
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', onEnd);
  });
}

/** A raw channel answering one frame at a time. */
export class RawClient {
  private pending: Buffer = Buffer.alloc(0);
  private waiter: ((e?: Error) => void) | undefined;
  private ended: Error | undefined;

  private constructor(private readonly s: Duplex) {
    s.on('data', (c: Buffer) => {
      this.pending = this.pending.length === 0 ? c : Buffer.concat([this.pending, c]);
      this.waiter?.();
    });
    const end = (): void => {
      this.ended ??= new RawChannelError('the service closed the raw channel', 0, true);
      this.waiter?.(this.ended);
    };
    s.once('close', end);
    s.once('end', end);
    s.on('error', () => {});
  }

  static async open(address: string, secret: string | undefined, timeoutMs?: number): Promise<RawClient> {
    const s = await dialService(address, timeoutMs);
    try {
      const rest = await upgradeRaw(s, secret);
      const c = new RawClient(s);
      c.pending = rest;
      s.resume();
      return c;
    } catch (e) {
      s.destroy();
      throw e;
    }
  }

  /** Sends one command frame and resolves with its response frame. */
  async transact(frame: Uint8Array): Promise<Uint8Array> {
    this.s.write(frame);
    for (;;) {
      if (this.pending.length >= 10) {
        const size = this.pending.readUInt32BE(2);
        if (this.pending.length >= size) {
          const out = new Uint8Array(this.pending.subarray(0, size));
          this.pending = this.pending.subarray(size);
          return out;
        }
      }
      if (this.ended) throw this.ended;
      await new Promise<void>((resolve, reject) => (this.waiter = (e) => (e ? reject(e) : resolve())));
      this.waiter = undefined;
    }
  }

  close(): void {
    this.s.destroy();
  }
}
