/**
 * QueuedTransport's guarantees after its per-command cost was cut (one AbortSignal shared by
 * consecutive commands, no Promise.race, one listener per signal in StreamTransport): deadline,
 * the caller's abort, close(), queue order, no listener growth, and no late response reaching a
 * later command. Peers are real Duplex streams answering under the test's control, and swtpm.
 */
import { getEventListeners } from 'node:events';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ChardevTransport,
  DeviceTransport,
  QueuedTransport,
  ResponseFramer,
  StreamTransport,
  TpmTransportError,
  type Transport,
} from '../../src/tpm/transport/index.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { startSwtpm, swtpmAvailable } from '../helpers/swtpm.js';
import { rejection } from '../helpers/rejection.js';
import { settled } from '../helpers/settled.js';

const haveSwtpm = swtpmAvailable();

/** TPM2_GetRandom(n): the last byte tells commands apart. */
function cmd(n: number): Uint8Array {
  return Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, n]);
}

/** A response frame whose 1-byte body echoes the command's last byte. */
function answerTo(command: Uint8Array): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt16BE(0x8001, 0);
  b.writeUInt32BE(11, 2);
  b[10] = command[command.length - 1]!;
  return b;
}

const tagOf = (response: Uint8Array): number => response[10]!;

/** A stream peer: records every command written; answers at once unless told to hold. */
class Peer {
  readonly commands: number[] = [];
  /** Commands held back, answered by release(). */
  private readonly held: Buffer[] = [];
  hold = false;
  readonly stream: Duplex;

  constructor() {
    const held = this.held;
    const commands = this.commands;
    const peer = this;
    this.stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        commands.push(chunk[chunk.length - 1]!);
        if (peer.hold) held.push(Buffer.from(chunk));
        else this.push(answerTo(chunk));
        done();
      },
    });
  }

  /** Answers the oldest held command (late, from the transport's point of view). */
  release(): void {
    const c = this.held.shift();
    if (!c) throw new Error('nothing held');
    this.stream.push(answerTo(c));
  }

  get holding(): number {
    return this.held.length;
  }
}

/** Turns of the event loop (not wall time) for stream events to be delivered. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Resolves once `peer` has received `n` commands. */
async function received(peer: Peer, n: number): Promise<void> {
  for (let i = 0; peer.commands.length < n; i++) {
    if (i > 1000) throw new Error(`peer received ${peer.commands.length} of ${n} commands`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A StreamTransport on a connector: every connection is a new Peer. */
function reconnecting(hold: (index: number) => boolean = () => false): { transport: StreamTransport; peers: Peer[] } {
  const peers: Peer[] = [];
  const transport = new StreamTransport(async () => {
    const p = new Peer();
    p.hold = hold(peers.length);
    peers.push(p);
    return p.stream;
  });
  return { transport, peers };
}

/** Records the signals handed to `exchange` of a stream transport. */
class SpyTransport extends ChardevTransport {
  readonly signals: AbortSignal[] = [];
  protected override exchange(command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    if (this.signals[this.signals.length - 1] !== signal) this.signals.push(signal);
    return super.exchange(command, signal);
  }
}

const open: Transport[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(open.splice(0).map((t) => t.close()));
});
function track<T extends Transport>(t: T): T {
  open.push(t);
  return t;
}

describe('deadline', () => {
  it('fires at the deadline on a silent peer (fake clock), and the next command is answered', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const peer = new Peer();
    peer.hold = true;
    const t = track(new ChardevTransport(peer.stream, { timeoutMs: 300 }));
    const p = rejection(t.send(cmd(1)));
    const done = settled(p);
    await received(peer, 1);
    await vi.advanceTimersByTimeAsync(299);
    expect(done()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const e = await p;
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toMatch(/within 300 ms/);
    // The late answer to 1 is drained before 2 is written; 2 gets its own answer.
    peer.hold = false;
    const next = t.send(cmd(2));
    await turns();
    expect(peer.commands).toEqual([1]);
    peer.release();
    expect(tagOf(await next)).toBe(2);
    expect(peer.commands).toEqual([1, 2]);
  });

  it('counts from the call: a queued command times out behind a slow one without overtaking it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const peer = new Peer();
    peer.hold = true;
    const t = track(new ChardevTransport(peer.stream, { timeoutMs: 10_000 }));
    const a = t.send(cmd(1));
    const b = rejection(t.send(cmd(2), { timeoutMs: 100 }));
    const c = t.send(cmd(3));
    await received(peer, 1);
    await vi.advanceTimersByTimeAsync(100);
    expect((await b).code).toBe('TIMEOUT');
    await turns();
    expect(peer.commands).toEqual([1]); // 3 waits for 1; 2 is never written
    peer.hold = false;
    peer.release();
    expect(tagOf(await a)).toBe(1);
    expect(tagOf(await c)).toBe(3);
    expect(peer.commands).toEqual([1, 3]);
  });
});

describe("the caller's AbortSignal", () => {
  it('aborting a queued command takes it out of the queue; the running one keeps its place', async () => {
    const peer = new Peer();
    peer.hold = true;
    const t = track(new ChardevTransport(peer.stream));
    const ac = new AbortController();
    const a = t.send(cmd(1));
    const b = rejection(t.send(cmd(2), { signal: ac.signal }));
    const c = t.send(cmd(3));
    await received(peer, 1);
    ac.abort(new Error('not needed'));
    const e = await b;
    expect(e.code).toBe('ABORTED');
    expect((e.cause as Error).message).toBe('not needed');
    await turns();
    expect(peer.commands).toEqual([1]);
    peer.hold = false;
    peer.release();
    expect(tagOf(await a)).toBe(1);
    expect(tagOf(await c)).toBe(3);
    expect(peer.commands).toEqual([1, 3]);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('aborting the running command on a fixed stream: its late answer is drained, never handed on', async () => {
    const peer = new Peer();
    peer.hold = true;
    const t = track(new SpyTransport(peer.stream));
    // Many commands first, so that the aborted one shares its signal with earlier ones.
    peer.hold = false;
    for (let i = 0; i < 20; i++) expect(tagOf(await t.send(cmd(100 + i)))).toBe(100 + i);
    expect(t.signals).toHaveLength(1);
    peer.hold = true;
    const ac = new AbortController();
    const a = rejection(t.send(cmd(1), { signal: ac.signal }));
    const b = t.send(cmd(2));
    await received(peer, 21);
    ac.abort();
    expect((await a).code).toBe('ABORTED');
    expect(t.signals[0]!.aborted).toBe(true);
    await turns();
    expect(peer.commands.slice(20)).toEqual([1]); // 2 waits for the late answer to 1
    peer.hold = false;
    peer.release();
    expect(tagOf(await b)).toBe(2);
    expect(tagOf(await t.send(cmd(3)))).toBe(3);
    // The command after the abort got a fresh signal, not the fired one.
    expect(t.signals).toHaveLength(2);
    expect(t.signals[1]!.aborted).toBe(false);
  });

  it('aborting the running command with a connector: a new connection, the old one closed', async () => {
    const { transport: t, peers } = reconnecting((i) => i === 0);
    track(t);
    const ac = new AbortController();
    const a = rejection(t.send(cmd(1), { signal: ac.signal }));
    await new Promise((r) => setImmediate(r));
    await received(peers[0]!, 1);
    const b = t.send(cmd(2));
    ac.abort();
    expect((await a).code).toBe('ABORTED');
    expect(tagOf(await b)).toBe(2);
    expect(peers).toHaveLength(2);
    expect(peers[0]!.stream.destroyed).toBe(true);
    expect(peers[1]!.commands).toEqual([2]);
    expect(peers[0]!.holding).toBe(1); // its answer never came, and could not reach anyone now
  });

  it('an already aborted signal: nothing is written', async () => {
    const peer = new Peer();
    const t = track(new ChardevTransport(peer.stream));
    expect((await rejection(t.send(cmd(1), { signal: AbortSignal.abort() }))).code).toBe('ABORTED');
    expect(tagOf(await t.send(cmd(2)))).toBe(2);
    expect(peer.commands).toEqual([2]);
  });
});

describe('close()', () => {
  it('fails the running and every queued command with CLOSED; nothing more is written', async () => {
    const peer = new Peer();
    peer.hold = true;
    const t = new ChardevTransport(peer.stream);
    const all = [1, 2, 3, 4].map((n) => rejection(t.send(cmd(n))));
    await received(peer, 1);
    await t.close();
    for (const p of all) expect((await p).code).toBe('CLOSED');
    expect((await rejection(t.send(cmd(5)))).code).toBe('CLOSED');
    expect(peer.commands).toEqual([1]);
    expect(peer.stream.destroyed).toBe(true);
  });
});

describe('no growth over many commands', () => {
  it("10 000 commands leave no listener on the caller's signal or the transport's", async () => {
    const peer = new Peer();
    const t = track(new SpyTransport(peer.stream));
    const ac = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const p = t.send(cmd(i % 256), { signal: ac.signal });
      if (i % 1000 === 0) expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
      expect(tagOf(await p)).toBe(i % 256);
    }
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(t.signals).toHaveLength(1);
    expect(getEventListeners(t.signals[0]!, 'abort').length).toBeLessThanOrEqual(1);
    expect(peer.commands).toHaveLength(10_000);
  });

  it('with every 100th command given up while running: one fresh signal per abort, each left clean', async () => {
    const { transport: t, peers } = reconnecting();
    const spy: AbortSignal[] = [];
    const inner = t as unknown as { exchange(c: Uint8Array, s: AbortSignal): Promise<Uint8Array> };
    const exchange = inner.exchange.bind(t);
    inner.exchange = (c, s) => {
      if (spy[spy.length - 1] !== s) spy.push(s);
      return exchange(c, s);
    };
    track(t);
    for (let i = 0; i < 2000; i++) {
      if (i % 100 === 50) {
        const ac = new AbortController();
        const peer = peers[peers.length - 1]!;
        const before = peer.commands.length;
        peer.hold = true;
        const p = rejection(t.send(cmd(i % 256), { signal: ac.signal }));
        await received(peer, before + 1);
        ac.abort();
        expect((await p).code).toBe('ABORTED');
        expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
      } else {
        expect(tagOf(await t.send(cmd(i % 256)))).toBe(i % 256);
      }
    }
    expect(spy).toHaveLength(21);
    expect(spy.slice(0, 20).every((s) => s.aborted)).toBe(true);
    for (const s of spy) expect(getEventListeners(s, 'abort').length).toBeLessThanOrEqual(1);
    expect(getEventListeners(spy[20]!, 'abort')).toHaveLength(1); // StreamTransport's one listener
    expect(peers).toHaveLength(21); // one connection per abort, plus the first
  });
});

describe('a QueuedTransport written by someone else', () => {
  class Scripted extends QueuedTransport {
    readonly description = 'scripted';
    readonly seen: Array<{ command: number; signal: AbortSignal }> = [];
    constructor(private readonly answer: (command: Uint8Array, signal: AbortSignal) => Promise<Uint8Array>) {
      super();
    }
    protected exchange(command: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
      this.seen.push({ command: command[command.length - 1]!, signal });
      return this.answer(command, signal);
    }
    protected async dispose(): Promise<void> {}
  }

  it('an exchange that throws synchronously rejects that command only', async () => {
    const t = track(
      new Scripted((c) => {
        if (c[c.length - 1] === 1) throw new TpmTransportError('IO', 'thrown');
        return Promise.resolve(new Uint8Array(answerTo(c)));
      }),
    );
    const [a, b] = [t.send(cmd(1)), t.send(cmd(2))];
    expect((await rejection(a)).message).toBe('thrown');
    expect(tagOf(await b)).toBe(2);
  });

  it('gets its own copy of the command: the caller may reuse its buffer while queued', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const t = track(new Scripted(async (c) => (await gate, new Uint8Array(answerTo(c)))));
    const first = t.send(cmd(1));
    const buf = cmd(2);
    const second = t.send(buf);
    buf[11] = 9;
    release();
    expect(tagOf(await first)).toBe(1);
    expect(tagOf(await second)).toBe(2);
    expect(t.seen.map((s) => s.command)).toEqual([1, 2]);
  });

  it('its signal fires with the reason send rejects with, only for the running command', async () => {
    const t = track(new Scripted((_c, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))));
    const ac = new AbortController();
    const a = rejection(t.send(cmd(1), { signal: ac.signal }));
    const b = rejection(t.send(cmd(2), { timeoutMs: 50 }));
    await new Promise((r) => setImmediate(r));
    ac.abort();
    const e = await a;
    expect(e.code).toBe('ABORTED');
    expect(t.seen[0]!.signal.reason).toBe(e);
    const e2 = await b;
    expect(e2.code).toBe('TIMEOUT');
    expect(t.seen[1]!.signal).not.toBe(t.seen[0]!.signal);
    expect(t.seen[1]!.signal.reason).toBe(e2);
  });
});

describe('ResponseFramer', () => {
  it('a whole response in one chunk comes out as a copy, with nothing kept', () => {
    const f = new ResponseFramer();
    const chunk = answerTo(cmd(7));
    const [r, ...rest] = f.push(chunk);
    expect(rest).toEqual([]);
    chunk[10] = 0; // the reader reuses its buffer
    expect(r).toEqual(new Uint8Array(answerTo(cmd(7))));
    expect(Buffer.isBuffer(r)).toBe(false);
    expect(f.buffered).toBe(0);
  });

  it('reassembles pieces, splits back-to-back frames and keeps a trailing partial one', () => {
    const f = new ResponseFramer();
    const a = answerTo(cmd(1));
    const b = answerTo(cmd(2));
    expect(f.push(a.subarray(0, 3))).toEqual([]);
    expect(f.expected).toBeUndefined();
    expect(f.push(a.subarray(3, 8))).toEqual([]);
    expect(f.expected).toBe(11);
    const out = f.push(Buffer.concat([a.subarray(8), b, a.subarray(0, 4)]));
    expect(out.map(tagOf)).toEqual([1, 2]);
    expect(f.buffered).toBe(4);
  });

  it('gives every frame memory of its own: the transports promise fresh responses (Transport.freshResponses)', async () => {
    const f = new ResponseFramer();
    const chunk = Buffer.concat([answerTo(cmd(1)), answerTo(cmd(2)), answerTo(cmd(3)).subarray(0, 5)]);
    const frames = [...f.push(chunk), ...f.push(answerTo(cmd(3)).subarray(5)), ...f.push(answerTo(cmd(4)))];
    expect(frames.map(tagOf)).toEqual([1, 2, 3, 4]);
    const buffers = new Set<ArrayBufferLike>([chunk.buffer, ...frames.map((r) => r.buffer)]);
    expect(buffers.size).toBe(5);
    for (const r of frames) expect([r.byteOffset, r.buffer.byteLength]).toEqual([0, r.length]);
    const transports = [new StreamTransport(new Duplex({ read() {}, write(_c, _e, cb) { cb(); } })), new DeviceTransport({ path: '/nonexistent/tpm' })];
    for (const t of transports) expect(t.freshResponses).toBe(true);
    await Promise.all(transports.map((t) => t.close()));
  });

  it('refuses an impossible size field at once, whole chunk or not', () => {
    const bad = Buffer.from('80010000000400000000', 'hex');
    expect(() => new ResponseFramer().push(bad)).toThrow(/less than the 10-byte header/);
    const big = Buffer.from('800100100000', 'hex');
    expect(() => new ResponseFramer(4096).push(big)).toThrow(/more than the 4096-byte limit/);
  });
});

describe.skipIf(skipUnlessCI(!haveSwtpm))('swtpm socket', () => {
  it("10 000 GetRandom with the caller's signal: each answered, no listener left", async () => {
    const s = await startSwtpm();
    try {
      const t = s.transport({ timeoutMs: 30_000 });
      const ac = new AbortController();
      const seen = new Set<string>();
      for (let i = 0; i < 10_000; i++) {
        const r = await t.send(Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8]), { signal: ac.signal });
        expect(r.length).toBe(20);
        seen.add(Buffer.from(r.subarray(12)).toString('hex'));
      }
      expect(seen.size).toBe(10_000);
      expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
      await t.close();
    } finally {
      await s.stop();
    }
  }, 60_000);
});
