/**
 * Transports against real swtpm (socket, chardev fd, PTY character device) and against fake
 * peers that misbehave on purpose (silent, late, garbage, hang-up).
 */
import { promises as fsp } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ChardevTransport,
  DeviceTransport,
  SwtpmSocketTransport,
  TpmTransportError,
  openTransport,
  type Transport,
} from '../../src/tpm/transport/index.js';
import { socatAvailable, startPty, startSwtpm, startSwtpmChardev, swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { rejection } from '../helpers/rejection.js';
import { settled } from '../helpers/settled.js';

const haveSwtpm = swtpmAvailable();
const haveSocat = socatAvailable();

// ---------------------------------------------------------------------------------------------
// raw frames

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const u16 = (b: Uint8Array, o: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(o);
const u32 = (b: Uint8Array, o: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(o);

/** TPM2_GetRandom (Part 3, 16.1): tag NO_SESSIONS, size 12, TPM_CC_GetRandom 0x17B, bytesRequested. */
function getRandom(n: number): Uint8Array {
  const b = hex('80010000000c0000017b0000');
  new DataView(b.buffer).setUint16(10, n);
  return b;
}

/** TPM2_GetCapability (Part 3, 30.2): TPM_CAP_TPM_PROPERTIES, TPM_PT_MANUFACTURER, count 1. */
const GET_CAP_MANUFACTURER = hex('8001 00000016 0000017a 00000006 00000105 00000001');

/**
 * TPM2_CreatePrimary (Part 3, 24.1) of an RSA-2048 storage key under TPM_RH_OWNER with the
 * empty-password session: slow enough (tens of ms on swtpm) to be given up on.
 */
const CREATE_PRIMARY_RSA = hex(`
  8002 00000043 00000131 40000001
  00000009 40000009 0000 00 0000
  0004 0000 0000
  001a 0001 000b 00030072 0000 0006 0080 0043 0010 0800 00000000 0000
  0000 00000000`);

function expectRandom(resp: Uint8Array, n: number): Uint8Array {
  expect(u16(resp, 0)).toBe(0x8001);
  expect(u32(resp, 6)).toBe(0); // TPM_RC_SUCCESS
  expect(resp.length).toBe(12 + n);
  expect(u32(resp, 2)).toBe(resp.length);
  expect(u16(resp, 10)).toBe(n); // TPM2B_DIGEST.size
  return resp.subarray(12);
}

function expectManufacturer(resp: Uint8Array): void {
  expect(u16(resp, 0)).toBe(0x8001);
  expect(u32(resp, 6)).toBe(0);
  expect(u32(resp, 2)).toBe(resp.length);
  // moreData (1) | TPMS_CAPABILITY_DATA: capability, TPML_TAGGED_TPM_PROPERTY{count, {property, value}}
  expect(resp.length).toBe(10 + 1 + 4 + 4 + 8);
  expect(u32(resp, 11)).toBe(6);
  expect(u32(resp, 15)).toBe(1);
  expect(u32(resp, 19)).toBe(0x105);
  expect(u32(resp, 23)).toBe(0x49424d00); // "IBM\0" (libtpms)
}

/** A response frame with the given tag/rc/body, for fake peers. */
function frame(body: Uint8Array = new Uint8Array(0), rc = 0): Buffer {
  const b = Buffer.alloc(10 + body.length);
  b.writeUInt16BE(0x8001, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(rc, 6);
  b.set(body, 10);
  return b;
}

// ---------------------------------------------------------------------------------------------
// real swtpm through each transport

interface Rig {
  transport: Transport;
  stop(): Promise<void>;
}

const rigs: Array<[string, () => Promise<Rig>, boolean]> = [
  [
    'swtpm socket',
    async () => {
      const s = await startSwtpm();
      return { transport: s.transport(), stop: () => s.stop() };
    },
    haveSwtpm,
  ],
  [
    'swtpm chardev fd',
    async () => {
      const s = await startSwtpmChardev();
      return { transport: s.transport(), stop: () => s.stop() };
    },
    haveSwtpm,
  ],
  [
    'PTY character device',
    async () => {
      const s = await startSwtpm();
      const pty = await startPty(s.sockPath);
      return {
        transport: pty.transport(),
        stop: async () => {
          await pty.stop();
          await s.stop();
        },
      };
    },
    haveSwtpm && haveSocat,
  ],
];

describe.each(rigs)('%s', (_name, make, available) => {
  let rig: Rig;
  beforeAll(async () => {
    if (available) rig = await make();
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it.skipIf(skipUnlessCI(!available))('answers TPM2_GetRandom', async () => {
    const resp = await rig.transport.send(hex('80010000000c0000017b0010'));
    expectRandom(resp, 16);
  });

  it.skipIf(skipUnlessCI(!available))('answers TPM2_GetCapability', async () => {
    expectManufacturer(await rig.transport.send(GET_CAP_MANUFACTURER));
  });

  it.skipIf(skipUnlessCI(!available))('answers 50 sequential commands', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const n = 1 + (i % 48);
      const bytes = expectRandom(await rig.transport.send(getRandom(n)), n);
      seen.add(Buffer.from(bytes).toString('hex'));
    }
    expect(seen.size).toBe(50);
  });

  it.skipIf(skipUnlessCI(!available))('answers 20 concurrent commands, each its own, in order', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): number => warnings.push(w);
    process.on('warning', onWarning);
    const done: number[] = [];
    // Distinct sizes make a mixed-up response visible.
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        rig.transport.send(i % 2 ? GET_CAP_MANUFACTURER : getRandom(i + 1)).then((r) => {
          done.push(i);
          return r;
        }),
      ),
    );
    results.forEach((r, i) => (i % 2 ? expectManufacturer(r) : expectRandom(r, i + 1)));
    expect(done).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    expect(warnings.map((w) => w.message)).toEqual([]); // e.g. MaxListenersExceededWarning
  });

  it.skipIf(skipUnlessCI(!available))('a command given up on (timeout, abort) never answers the next one', async () => {
    const t = rig.transport;
    const r1 = await t.send(CREATE_PRIMARY_RSA, { timeoutMs: 2 }).catch((e: unknown) => e);
    if (r1 instanceof Uint8Array) expect(u32(r1, 6)).toBe(0); // the TPM was faster than 2 ms
    else expect((r1 as TpmTransportError).code).toBe('TIMEOUT');
    expectRandom(await t.send(getRandom(16)), 16);
    const ac = new AbortController();
    const p = t.send(CREATE_PRIMARY_RSA, { signal: ac.signal }).catch((e: unknown) => e);
    setTimeout(() => ac.abort(), 1);
    const r2 = await p;
    if (!(r2 instanceof Uint8Array)) expect((r2 as TpmTransportError).code).toBe('ABORTED');
    expectRandom(await t.send(getRandom(7)), 7);
    expectManufacturer(await t.send(GET_CAP_MANUFACTURER));
  });

  it.skipIf(skipUnlessCI(!available))('reports a TPM error code as a response, not a transport error', async () => {
    // GetRandom with a truncated parameter area: TPM_RC_INSUFFICIENT for parameter 1 (0x1da).
    const resp = await rig.transport.send(hex('80010000000b0000017b00'));
    expect(resp.length).toBe(10);
    expect(u32(resp, 6)).toBe(0x1da);
    expectRandom(await rig.transport.send(getRandom(4)), 4);
  });
});

// ---------------------------------------------------------------------------------------------
// swtpm harness behaviour

describe.skipIf(skipUnlessCI(!haveSwtpm))('swtpm harness', () => {
  it('restart keeps state; the socket transport reconnects lazily', async () => {
    const s = await startSwtpm();
    try {
      const t = s.transport({ timeoutMs: 10_000 });
      expectRandom(await t.send(getRandom(8)), 8);
      const pid = s.pid;
      await s.restart();
      expect(s.pid).not.toBe(pid);
      expectRandom(await t.send(getRandom(8)), 8);
      s.kill();
      const e = await rejection(t.send(getRandom(8)));
      expect(e.code).toBe('IO');
      await s.restart();
      expectRandom(await t.send(getRandom(8)), 8);
    } finally {
      await s.stop();
    }
  });

  it('stop kills swtpm and removes its directory', async () => {
    const s = await startSwtpm();
    const pid = s.pid!;
    await s.stop();
    expect(() => process.kill(pid, 0)).toThrow();
    await expect(fsp.stat(s.dir)).rejects.toThrow();
    await s.stop(); // idempotent
  });

  it('chardev: transport fails with IO once swtpm is gone', async () => {
    const s = await startSwtpmChardev();
    try {
      s.kill();
      const e = await rejection(s.transport().send(getRandom(4), { timeoutMs: 5000 }));
      expect(e.code).toBe('IO');
    } finally {
      await s.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// fake peers

type Reply = (cmd: Buffer, sock: Socket, conn: number, index: number) => void;

interface Fake {
  path: string;
  /** Commands received, per connection. */
  received: Buffer[][];
  connections: number;
  /** Resolves once `n` commands have arrived, over all connections. */
  whenReceived(n: number): Promise<void>;
  close(): Promise<void>;
}

const fakes: Fake[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

/** A unix-socket server that frames incoming commands and lets `reply` decide what to do. */
async function fakeTpm(reply: Reply): Promise<Fake> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'fake-tpm-'));
  const path = join(dir, 'tpm.sock');
  const sockets = new Set<Socket>();
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const count = (): number => fake.received.reduce((k, c) => k + c.length, 0);
  const fake: Fake = {
    path,
    received: [],
    connections: 0,
    whenReceived: (n) =>
      count() >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  const server: Server = createServer((sock) => {
    const conn = fake.connections++;
    const got: Buffer[] = [];
    fake.received.push(got);
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let pending = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 6 && pending.length >= pending.readUInt32BE(2)) {
        const cmd = pending.subarray(0, pending.readUInt32BE(2));
        pending = pending.subarray(cmd.length);
        got.push(cmd);
        reply(cmd, sock, conn, got.length - 1);
        for (const w of waiters.filter((x) => count() >= x.n)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  fakes.push(fake);
  return fake;
}

/** Echoes the command's last byte in a 1-byte body, so responses can be told apart. */
const tagged = (cmd: Buffer): Buffer => frame(Uint8Array.of(cmd[cmd.length - 1]!));
const taggedCmd = (tag: number): Uint8Array => getRandom(tag);

function later(ms: number, f: () => void): void {
  setTimeout(f, ms).unref();
}

/** A promise and its resolver: lets a fake peer and the test wait on each other's events. */
function signal<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Writes `b` and resolves once it has reached the kernel (or the socket is gone). */
const written = (sock: Socket, b: Buffer): Promise<void> => new Promise((r) => sock.write(b, () => r()));

/**
 * A few turns of the event loop (not wall time): bytes written to a unix socket are in the
 * peer's receive buffer when the write completes, so they are read within a turn or two.
 */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

const received = (fake: Fake, n: number): Promise<void> => fake.whenReceived(n);

const silent: Reply = () => {};

describe('socket transport against misbehaving peers', () => {
  it('times out on a silent peer, then reconnects and works', async () => {
    const arrived = signal();
    const fake = await fakeTpm((cmd, sock, conn) => {
      if (conn > 0) sock.write(tagged(cmd));
      else arrived.resolve();
    });
    // Fake clock for the deadline only; the sockets stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const t = new SwtpmSocketTransport({ path: fake.path, timeoutMs: 300 });
      const p = rejection(t.send(taggedCmd(1)));
      const done = settled(p);
      await arrived.promise;
      await vi.advanceTimersByTimeAsync(299);
      expect(done()).toBe(false); // not before the deadline
      await vi.advanceTimersByTimeAsync(1);
      await turns(1);
      expect(done()).toBe(true); // at the deadline, on the fake clock
      const e = await p;
      expect(e.code).toBe('TIMEOUT');
      expect(e.message).toMatch(/within 300 ms/);
      expect(await t.send(taggedCmd(2))).toEqual(new Uint8Array(tagged(Buffer.from([2]))));
      expect(fake.connections).toBe(2);
      vi.useRealTimers();
      await t.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('never hands a late response to the next command', async () => {
    // The first connection answers only when the test says so: after the command timed out.
    const late = signal<() => Promise<void>>();
    const fake = await fakeTpm((cmd, sock, conn) => {
      if (conn === 0) late.resolve(() => written(sock, tagged(cmd)));
      else sock.write(tagged(cmd));
    });
    const t = new SwtpmSocketTransport({ path: fake.path });
    expect((await rejection(t.send(taggedCmd(1), { timeoutMs: 150 }))).code).toBe('TIMEOUT');
    const r = await t.send(taggedCmd(2));
    expect(r[10]).toBe(2);
    await (await late.promise)();
    await turns();
    expect((await t.send(taggedCmd(3)))[10]).toBe(3);
    await t.close();
  });

  it('aborts through an AbortSignal', async () => {
    const fake = await fakeTpm(silent);
    const t = new SwtpmSocketTransport({ path: fake.path });
    const ac = new AbortController();
    const p = rejection(t.send(taggedCmd(1), { signal: ac.signal }));
    await received(fake, 1);
    ac.abort(new Error('user gave up'));
    const e = await p;
    expect(e.code).toBe('ABORTED'); // not TIMEOUT: the abort ended it, not the 120 s deadline
    expect((e.cause as Error).message).toBe('user gave up');
    // Already aborted: nothing is sent at all.
    const before = fake.received.flat().length;
    expect((await rejection(t.send(taggedCmd(2), { signal: AbortSignal.abort() }))).code).toBe('ABORTED');
    expect(fake.received.flat().length).toBe(before);
    await t.close();
  });

  it('a queued command that times out never overtakes the running one', async () => {
    // The first command is answered only after the queued one has timed out.
    const first = signal<() => void>();
    const fake = await fakeTpm((cmd, sock, _conn, i) => {
      if (i === 0) first.resolve(() => sock.write(tagged(cmd)));
      else sock.write(tagged(cmd));
    });
    const t = new SwtpmSocketTransport({ path: fake.path });
    const a = t.send(taggedCmd(1));
    const b = t.send(taggedCmd(2), { timeoutMs: 100 });
    const c = t.send(taggedCmd(3));
    expect((await rejection(b)).code).toBe('TIMEOUT');
    (await first.promise)();
    expect((await a)[10]).toBe(1);
    expect((await c)[10]).toBe(3);
    expect(fake.received.flat().map((x) => x[x.length - 1])).toEqual([1, 3]);
    await t.close();
  });

  it.each([
    ['a size field below 10', () => Buffer.from('800100000005000000', 'hex'), 'PROTOCOL', /less than the 10-byte header/],
    ['a size field above the limit', () => Buffer.from('80017fffffff00000000', 'hex'), 'PROTOCOL', /more than the 65536-byte limit/],
    ['bytes after the response', () => Buffer.concat([frame(), Buffer.from('00')]), 'PROTOCOL', /after the response/],
    ['two responses', () => Buffer.concat([frame(), frame()]), 'PROTOCOL', /no command|after the response/],
  ] as const)('rejects %s with %s', async (_what, bytes, code, message) => {
    const fake = await fakeTpm((_cmd, sock) => sock.write(bytes()));
    const t = new SwtpmSocketTransport({ path: fake.path, timeoutMs: 5000 });
    const e = await rejection(t.send(taggedCmd(1)));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    await t.close();
  });

  it('rejects a short response followed by EOF with IO, without waiting for the deadline', async () => {
    const fake = await fakeTpm((_cmd, sock) => sock.end(frame(Uint8Array.of(1, 2, 3, 4)).subarray(0, 9)));
    const t = new SwtpmSocketTransport({ path: fake.path, timeoutMs: 10_000 });
    const e = await rejection(t.send(taggedCmd(1)));
    expect(e.code).toBe('IO'); // the deadline would have said TIMEOUT
    expect(e.message).toMatch(/closed the connection after 9 byte\(s\) of a 14-byte response/);
    await t.close();
  });

  it('rejects EOF before any response with IO', async () => {
    const fake = await fakeTpm((_cmd, sock) => sock.end());
    const t = new SwtpmSocketTransport({ path: fake.path, timeoutMs: 10_000 });
    expect((await rejection(t.send(taggedCmd(1)))).code).toBe('IO');
    await t.close();
  });

  it('drops a connection that sends unsolicited bytes and reconnects', async () => {
    let first: Socket | undefined;
    const fake = await fakeTpm((cmd, sock, conn) => {
      if (conn === 0) first = sock;
      sock.write(tagged(cmd));
    });
    const t = new SwtpmSocketTransport({ path: fake.path });
    expect((await t.send(taggedCmd(1)))[10]).toBe(1);
    // Unsolicited: after the answer has been taken, before the next command.
    await written(first!, frame());
    await turns();
    expect((await t.send(taggedCmd(2)))[10]).toBe(2);
    expect(fake.connections).toBe(2);
    await t.close();
  });

  it('cannot connect: IO with the reason', async () => {
    const t = new SwtpmSocketTransport({ path: join(tmpdir(), 'no-such-swtpm.sock') });
    const e = await rejection(t.send(taggedCmd(1)));
    expect(e.code).toBe('IO');
    expect(e.message).toMatch(/cannot connect to swtpm:unix:.*ENOENT/);
  });

  it('close fails the running and the queued commands with CLOSED; later sends too', async () => {
    const fake = await fakeTpm(silent);
    const t = new SwtpmSocketTransport({ path: fake.path });
    const a = rejection(t.send(taggedCmd(1)));
    const b = rejection(t.send(taggedCmd(2)));
    await received(fake, 1); // the first is running, the second queued
    await t.close();
    expect((await a).code).toBe('CLOSED');
    expect((await b).code).toBe('CLOSED');
    expect((await rejection(t.send(taggedCmd(3)))).code).toBe('CLOSED');
  });

  it('refuses malformed commands before sending', async () => {
    const fake = await fakeTpm(silent);
    const t = new SwtpmSocketTransport({ path: fake.path });
    expect((await rejection(t.send(hex('8001000000')))).code).toBe('PROTOCOL');
    expect((await rejection(t.send(hex('80010000000d0000017b0010')))).message).toMatch(/claims 13 bytes but the command is 12/);
    await expect(t.send(getRandom(1), { timeoutMs: 0 })).rejects.toThrow(RangeError);
    expect(fake.connections).toBe(0);
    await t.close();
  });

  it('only accepts loopback TCP hosts', () => {
    expect(() => new SwtpmSocketTransport({ host: '10.0.0.1', port: 2321 })).toThrow(/loopback/);
    expect(() => new SwtpmSocketTransport({ host: 'example.com', port: 2321 })).toThrow(/loopback/);
    expect(new SwtpmSocketTransport({ host: '::1', port: 2321 }).description).toBe('swtpm:tcp:[::1]:2321');
    expect(new SwtpmSocketTransport({ port: 2321 }).description).toBe('swtpm:tcp:127.0.0.1:2321');
  });
});

describe.skipIf(skipUnlessCI(!haveSwtpm))('swtpm over TCP', () => {
  it('answers through swtpm:tcp:127.0.0.1:PORT', async () => {
    // swtpm cannot listen on port 0; take a free port and release it (a small race, tests only).
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const s = await startSwtpm({ tcpPort: port });
    try {
      const t = openTransport(`swtpm:tcp:127.0.0.1:${port}`, { timeoutMs: 10_000 });
      expectRandom(await t.send(getRandom(16)), 16);
      expectManufacturer(await t.send(GET_CAP_MANUFACTURER));
      await t.close();
    } finally {
      await s.stop();
    }
  });
});

describe('chardev (fixed stream) transport against misbehaving peers', () => {
  async function connected(path: string): Promise<Socket> {
    const s = createConnection(path);
    await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
    return s;
  }

  it('drains a late response before writing the next command', async () => {
    const events: string[] = [];
    const late = signal<() => Promise<void>>();
    const fake = await fakeTpm((cmd, sock, _conn, i) => {
      events.push(`received ${cmd[cmd.length - 1]}`);
      if (i === 0)
        late.resolve(async () => {
          events.push('late answer to 1');
          await written(sock, tagged(cmd));
        });
      else sock.write(tagged(cmd));
    });
    const t = new ChardevTransport(await connected(fake.path));
    expect((await rejection(t.send(taggedCmd(1), { timeoutMs: 150 }))).code).toBe('TIMEOUT');
    const p = t.send(taggedCmd(2));
    await turns(); // time enough for a transport that does not drain to write command 2
    await (await late.promise)();
    // Not written until the late response has come and gone.
    const r = await p;
    expect(r[10]).toBe(2);
    expect(events).toEqual(['received 1', 'late answer to 1', 'received 2']);
    expect(fake.connections).toBe(1);
    await t.close();
  });

  it('a garbage response makes the stream unusable (it cannot reconnect)', async () => {
    const fake = await fakeTpm((_cmd, sock) => sock.write(Buffer.from('80010000000300000000', 'hex')));
    const t = new ChardevTransport(await connected(fake.path));
    expect((await rejection(t.send(taggedCmd(1)))).code).toBe('PROTOCOL');
    const e = await rejection(t.send(taggedCmd(2)));
    expect(e.code).toBe('IO');
    expect(e.message).toMatch(/unusable/);
    await t.close();
  });

  it('aborts, then answers the next command correctly', async () => {
    const late = signal<() => void>();
    const fake = await fakeTpm((cmd, sock, _conn, i) => {
      if (i === 0) late.resolve(() => sock.write(tagged(cmd)));
      else sock.write(tagged(cmd));
    });
    const t = new ChardevTransport(await connected(fake.path));
    const ac = new AbortController();
    const p = rejection(t.send(taggedCmd(1), { signal: ac.signal }));
    const answer1 = await late.promise; // command 1 is with the peer
    ac.abort();
    expect((await p).code).toBe('ABORTED');
    answer1(); // its answer comes after the abort
    expect((await t.send(taggedCmd(2)))[10]).toBe(2);
    await t.close();
  });
});

// ---------------------------------------------------------------------------------------------
// character device

describe('device transport', () => {
  it('ENOENT gives a clear error', async () => {
    const t = new DeviceTransport({ path: '/nonexistent/tpmrm0' });
    const e = await rejection(t.send(getRandom(1)));
    expect(e.code).toBe('IO');
    expect(e.message).toBe('no TPM device at /nonexistent/tpmrm0');
    await t.close();
  });

  it('refuses something that is not a character device', async () => {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'notdev-'));
    const file = join(dir, 'tpmrm0');
    await fsp.writeFile(file, '');
    try {
      const e = await rejection(new DeviceTransport(file).send(getRandom(1)));
      expect(e.code).toBe('IO');
      expect(e.message).toMatch(/not a character device/);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('default path is /dev/tpmrm0; opening is lazy', () => {
    const t = new DeviceTransport();
    expect(t.description).toBe('device:/dev/tpmrm0');
  });
});

describe.skipIf(skipUnlessCI(!haveSocat))('device transport on a PTY against misbehaving peers', () => {
  it('times out promptly on a silent peer while the event loop keeps ticking and the threadpool stays free', async () => {
    const fake = await fakeTpm(silent);
    const pty = await startPty(fake.path);
    try {
      const t = pty.transport({ timeoutMs: 500 });
      // Event order, not durations: while the command waits, timers and the threadpool (fs)
      // keep serving; the timeout comes after them.
      const events: string[] = [];
      const pending = rejection(t.send(taggedCmd(1))).then((e) => {
        events.push('timeout');
        return e;
      });
      await received(fake, 1);
      for (let i = 0; i < 25; i++) await new Promise((r) => setTimeout(r, 0));
      events.push('25 timer turns');
      await fsp.readFile(new URL(import.meta.url));
      events.push('fs read');
      const e = await pending;
      expect(e.code).toBe('TIMEOUT');
      expect(events).toEqual(['25 timer turns', 'fs read', 'timeout']);
      // More timeouts than libuv has threadpool threads (4): fs must still work while
      // another command waits.
      for (let i = 0; i < 6; i++) expect((await rejection(t.send(taggedCmd(2), { timeoutMs: 50 }))).code).toBe('TIMEOUT');
      events.length = 0;
      const last = rejection(t.send(taggedCmd(3))).then(() => events.push('timeout'));
      await fsp.readFile(new URL(import.meta.url));
      events.push('fs read');
      await last;
      expect(events).toEqual(['fs read', 'timeout']);
      await t.close();
    } finally {
      await pty.stop();
    }
  });

  it('never hands a late response to the next command (a PTY keeps unread input)', async () => {
    const late = signal<() => void>();
    const fake = await fakeTpm((cmd, sock, _conn, i) => {
      if (i === 0) late.resolve(() => sock.write(tagged(cmd)));
      else sock.write(tagged(cmd));
    });
    const pty = await startPty(fake.path);
    try {
      const t = pty.transport();
      expect((await rejection(t.send(taggedCmd(1), { timeoutMs: 150 }))).code).toBe('TIMEOUT');
      const p = t.send(taggedCmd(2));
      (await late.promise)(); // the answer to 1 arrives after it timed out
      expect((await p)[10]).toBe(2);
      expect((await t.send(taggedCmd(3)))[10]).toBe(3);
    } finally {
      await pty.stop();
    }
  });

  it('close fails a pending command with CLOSED', async () => {
    const fake = await fakeTpm(silent);
    const pty = await startPty(fake.path);
    try {
      const t = pty.transport();
      const p = rejection(t.send(taggedCmd(1)));
      await received(fake, 1); // written and pending
      await t.close();
      expect((await p).code).toBe('CLOSED');
      expect((await rejection(t.send(taggedCmd(2)))).code).toBe('CLOSED');
    } finally {
      await pty.stop();
    }
  });

  it('aborts through an AbortSignal', async () => {
    const fake = await fakeTpm(silent);
    const pty = await startPty(fake.path);
    try {
      const t = pty.transport();
      const ac = new AbortController();
      const p = rejection(t.send(taggedCmd(1), { signal: ac.signal }));
      await received(fake, 1);
      ac.abort();
      expect((await p).code).toBe('ABORTED'); // not TIMEOUT: the 120 s deadline played no part
    } finally {
      await pty.stop();
    }
  });

  it('reassembles a response delivered in pieces', async () => {
    const fake = await fakeTpm((cmd, sock) => {
      const r = frame(new Uint8Array(100).fill(cmd[cmd.length - 1]!));
      sock.write(r.subarray(0, 3));
      later(30, () => sock.write(r.subarray(3, 50)));
      later(60, () => sock.write(r.subarray(50)));
    });
    const pty = await startPty(fake.path);
    try {
      const r = await pty.transport().send(taggedCmd(7));
      expect(r.length).toBe(110);
      expect(r.subarray(10).every((b) => b === 7)).toBe(true);
    } finally {
      await pty.stop();
    }
  });

  it('rejects a bad size field with PROTOCOL', async () => {
    const fake = await fakeTpm((_cmd, sock) => sock.write(Buffer.from('80010000000400000000', 'hex')));
    const pty = await startPty(fake.path);
    try {
      const e = await rejection(pty.transport({ timeoutMs: 5000 }).send(taggedCmd(1)));
      expect(e.code).toBe('PROTOCOL');
    } finally {
      await pty.stop();
    }
  });

  it('rejects a short response followed by hang-up with IO, not a hang', async () => {
    const fake = await fakeTpm((_cmd, sock) => sock.end(frame(new Uint8Array(20)).subarray(0, 12)));
    const pty = await startPty(fake.path);
    try {
      const e = await rejection(pty.transport({ timeoutMs: 10_000 }).send(taggedCmd(1)));
      expect(e.code).toBe('IO'); // the deadline would have said TIMEOUT
      expect(e.message).toMatch(/EIO/);
    } finally {
      await pty.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// openTransport

describe('openTransport', () => {
  it.each([
    ['/dev/tpmrm0', DeviceTransport, 'device:/dev/tpmrm0'],
    ['/tmp/x/tpmrm0', DeviceTransport, 'device:/tmp/x/tpmrm0'],
    ['device:/dev/tpm0', DeviceTransport, 'device:/dev/tpm0'],
    ['swtpm:unix:/tmp/s.sock', SwtpmSocketTransport, 'swtpm:unix:/tmp/s.sock'],
    ['swtpm:tcp:127.0.0.1:2321', SwtpmSocketTransport, 'swtpm:tcp:127.0.0.1:2321'],
    ['swtpm:tcp:localhost:2321', SwtpmSocketTransport, 'swtpm:tcp:localhost:2321'],
    ['swtpm:tcp:[::1]:2321', SwtpmSocketTransport, 'swtpm:tcp:[::1]:2321'],
  ] as const)('%s', (spec, cls, description) => {
    const t = openTransport(spec);
    expect(t).toBeInstanceOf(cls);
    expect(t.description).toBe(description);
  });

  it.each(['', 'swtpm:tcp:127.0.0.1', 'swtpm:tcp:10.1.2.3:2321', 'swtpm:tcp:127.0.0.1:99999', 'swtpm:unix:', 'mssim:127.0.0.1:2321'])(
    'rejects %j',
    (spec) => {
      expect(() => openTransport(spec)).toThrow();
    },
  );
});
