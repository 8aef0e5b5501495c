/**
 * Streamed hash sequences are virtualized: however slowly one tenant streams, other tenants'
 * signs go ahead (the idle sequence is context-saved out of the TPM while others run), several
 * tenants stream at once with one TPM slot, places are shared fairly, and every ending — done,
 * client gone, body stalled (408), TPM restarted — leaves nothing loaded in the TPM.
 * Everything is asserted on outcomes, event order and TPM contents, never on timing.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/service/client/client.js';
import { FairPlaces } from '../../src/service/tpm/fair-places.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { connectTo, rawRequest } from './raw.js';
import { eventually, leftLoaded, startEnv, type TestEnv } from './env.js';

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const TENANTS = ['a', 'b', 'c', 'd', 'e'] as const;

/** Resolves with the result, or with the ServiceError it failed with. */
function outcome<T>(p: Promise<T>): Promise<T | ServiceError> {
  return p.catch((e: unknown) => {
    if (e instanceof ServiceError) return e;
    throw e;
  });
}

const verifies = (pem: string, message: Uint8Array, sig: Uint8Array): boolean => verify('sha256', message, createPublicKey(pem), sig);

/** `head`, then — once `go` resolves — `rest` in pieces, as a stream. */
function gated(head: Uint8Array, rest: Uint8Array, go: Promise<unknown>, piece = 8192): Readable {
  return Readable.from(
    (async function* () {
      yield Buffer.from(head);
      await go;
      for (let off = 0; off < rest.length; off += piece) {
        yield Buffer.from(rest.subarray(off, off + piece));
        await new Promise((r) => setImmediate(r));
      }
    })(),
  );
}

function gate(): { go: Promise<void>; open: () => void } {
  let open!: () => void;
  const go = new Promise<void>((r) => (open = r));
  return { go, open };
}

const count = (env: TestEnv, from: number, name: string): number => env.commands.slice(from).filter((c) => c === name).length;

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('virtualized hash sequences', () => {
  let env: TestEnv;
  const keys: Record<string, { handle: string; pem: string }> = {};
  const base = { hashSlots: 1, bodyTimeoutMs: 2000, minBodyBytesPerSec: 0, deadlineMs: 10_000 };

  const restart = async (over: Record<string, number> = {}): Promise<void> => {
    await env.restartService({ ...base, ...over });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
  };
  const nothingLoaded = async (what: string): Promise<void> => {
    await eventually(async () => (await leftLoaded(env)).transient.length === 0, 5000, `nothing loaded ${what}`);
    expect(await leftLoaded(env)).toEqual({ transient: [], sessions: [] });
  };
  const stats = () => env.service.core.sequences.stats();

  /** Raw streamed sign: headers and `body`, the socket left open (Content-Length promises more). */
  const rawStream = (tenant: string, body: Uint8Array) => {
    const s = connectTo(env.unix);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('error', () => {});
    const closed = new Promise<string>((r) => s.on('close', () => r(text)));
    s.write(
      `POST /v1/keys/${keys[tenant]!.handle}/sign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${env.secrets[tenant]}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n`,
    );
    s.write(body);
    return { socket: s, closed };
  };

  beforeAll(async () => {
    env = await startEnv({ tenants: TENANTS.map((id) => ({ id })), config: base });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    for (const t of TENANTS) keys[t] = await env.client(t).createKey({ type: 'ecc' });
  }, 60_000);
  afterAll(async () => {
    await env?.stop();
  });

  it("a stream trickling one byte at a time does not hold up another tenant's inline and streamed signs", async () => {
    const events: string[] = [];
    const sent: Buffer[] = [];
    let stop = false;
    const from = env.commands.length;
    const trickle = Readable.from(
      (async function* () {
        const head = randomBytes(4096);
        sent.push(head);
        yield head;
        for (let i = 0; i < 60 && !stop; i++) {
          await wait(300);
          const b = Buffer.of(i);
          sent.push(b);
          yield b;
        }
        events.push(stop ? 'a-ends' : 'a-gave-up-waiting');
      })(),
    );
    const aSign = outcome(env.client('a').sign(keys.a!.handle, { message: trickle })).then((r) => {
      events.push('a-signed');
      return r;
    });
    await eventually(() => count(env, from, 'SequenceUpdate') > 0, 10_000, "a's sequence under way");

    const b = env.client('b');
    const inlineMsg = randomBytes(4096);
    const bigMsg = randomBytes(1024 * 1024);
    const [inline, streamed] = await Promise.all([
      outcome(b.sign(keys.b!.handle, { message: inlineMsg })).then((r) => (events.push('b-inline'), r)),
      outcome(b.sign(keys.b!.handle, { message: gated(new Uint8Array(0), bigMsg, Promise.resolve(), 64 * 1024) })).then(
        (r) => (events.push('b-streamed'), r),
      ),
    ]);
    stop = true;
    const a = await aSign;

    expect(inline).not.toBeInstanceOf(ServiceError);
    expect(streamed).not.toBeInstanceOf(ServiceError);
    expect(a).not.toBeInstanceOf(ServiceError);
    if (inline instanceof ServiceError || streamed instanceof ServiceError || a instanceof ServiceError) return;
    expect(verifies(keys.b!.pem, inlineMsg, inline.signature)).toBe(true);
    expect(streamed.messageLength).toBe(bigMsg.length);
    expect(verifies(keys.b!.pem, bigMsg, streamed.signature)).toBe(true);
    const aMsg = Buffer.concat(sent);
    expect(a.messageLength).toBe(aMsg.length);
    expect(verifies(keys.a!.pem, aMsg, a.signature)).toBe(true);
    // b finished while a's stream was still open; a ended only when told to.
    expect([...events.slice(0, 2)].sort()).toEqual(['b-inline', 'b-streamed']);
    expect(events.slice(2)).toEqual(['a-ends', 'a-signed']);
    // a's idle sequence made way by being saved out and loaded back.
    expect(count(env, from, 'ContextSave')).toBeGreaterThan(0);
    expect(count(env, from, 'ContextLoad')).toBeGreaterThan(0);
    expect(stats()).toMatchObject({ open: 0, loaded: 0, saved: 0, waiting: 0 });
    await nothingLoaded('after the signs');
  });

  it('serves more tenants streaming at once than there are hash slots, each signature correct', async () => {
    const from = env.commands.length;
    const streams = ['a', 'b', 'c', 'd'];
    // Each stream sends its head, then waits until all four sequences are open at once.
    const allOpen = eventually(() => count(env, from, 'HashSequenceStart') >= streams.length, 10_000, 'four sequences open at once');
    const msgs = streams.map(() => randomBytes(200 * 1024 + 123));
    const results = await Promise.all(
      streams.map((t, i) => outcome(env.client(t).sign(keys[t]!.handle, { message: gated(msgs[i]!.subarray(0, 8192), msgs[i]!.subarray(8192), allOpen) }))),
    );
    results.forEach((r, i) => {
      expect(r).not.toBeInstanceOf(ServiceError);
      if (r instanceof ServiceError) return;
      expect(r.messageLength).toBe(msgs[i]!.length);
      expect(verifies(keys[streams[i]!]!.pem, msgs[i]!, r.signature), `signature of ${streams[i]}`).toBe(true);
    });
    expect(count(env, from, 'ContextSave')).toBeGreaterThanOrEqual(3);
    expect(stats()).toMatchObject({ open: 0, loaded: 0, saved: 0, waiting: 0 });
    await nothingLoaded('after four streams');
  });

  it('flushes the sequence of a client that goes away, whether it was loaded or saved', async () => {
    // Loaded: the only stream, abandoned mid-way.
    let from = env.commands.length;
    const lone = rawStream('a', randomBytes(16 * 1024));
    await eventually(() => count(env, from, 'SequenceUpdate') > 0, 10_000, "a's sequence under way");
    expect(stats()).toMatchObject({ open: 1, loaded: 1 });
    lone.socket.destroy();
    await eventually(() => stats().open === 0, 10_000, 'the sequence closed');
    await nothingLoaded('after a vanished client');

    // Saved: a's sequence is saved out while b streams, then a's client vanishes.
    from = env.commands.length;
    const abandoned = rawStream('a', randomBytes(16 * 1024));
    await eventually(() => count(env, from, 'SequenceUpdate') > 0, 10_000, "a's sequence under way");
    const g = gate();
    const bMsg = randomBytes(64 * 1024);
    const bSign = outcome(env.client('b').sign(keys.b!.handle, { message: gated(bMsg.subarray(0, 8192), bMsg.subarray(8192), g.go) }));
    await eventually(() => count(env, from, 'ContextSave') > 0 && stats().saved === 1, 10_000, "a's sequence saved out");
    abandoned.socket.destroy();
    await eventually(() => stats().open === 1, 10_000, "a's saved sequence dropped");
    g.open();
    const r = await bSign;
    expect(r).not.toBeInstanceOf(ServiceError);
    if (!(r instanceof ServiceError)) expect(verifies(keys.b!.pem, bMsg, r.signature)).toBe(true);
    expect(stats()).toMatchObject({ open: 0, loaded: 0, saved: 0, waiting: 0 });
    await nothingLoaded('after a vanished client whose sequence was saved');
  });

  it('answers 408 to a stream that goes idle and flushes its sequence', async () => {
    const from = env.commands.length;
    const idle = rawStream('c', randomBytes(16 * 1024));
    await eventually(() => count(env, from, 'SequenceUpdate') > 0, 10_000, "c's sequence under way");
    const answer = await idle.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('REQUEST_TIMEOUT');
    expect(stats()).toMatchObject({ open: 0, loaded: 0, saved: 0 });
    await nothingLoaded('after a 408');
    // And the next stream of the same tenant works.
    const msg = randomBytes(5000);
    const r = await env.client('c').sign(keys.c!.handle, { message: Readable.from([msg]) });
    expect(verifies(keys.c!.pem, msg, r.signature)).toBe(true);
  });

  it('gives a freed place to the tenant with the fewest open sequences, not to the one with many waiting', async () => {
    await restart({ maxSequences: 3, sequencesPerTenant: 3 });
    const granted: string[] = [];
    const onGrant = (e: { tenant: string }): void => void granted.push(e.tenant);
    env.service.core.sequences.events.on('granted', onGrant);
    try {
      const gates = Array.from({ length: 4 }, gate);
      const msgs = Array.from({ length: 5 }, () => randomBytes(20_000));
      const signOf = (t: string, i: number) =>
        outcome(env.client(t).sign(keys[t]!.handle, { message: gated(msgs[i]!.subarray(0, 2048), msgs[i]!.subarray(2048), gates[Math.min(i, 3)]!.go) }));
      const aOpen = [0, 1, 2].map((i) => signOf('a', i));
      await eventually(() => stats().open === 3, 10_000, "a's three sequences open");
      const aWaiting = signOf('a', 3);
      await eventually(() => stats().waiting === 1, 10_000, "a's fourth waiting");
      const bWaiting = signOf('b', 4);
      await eventually(() => stats().waiting === 2, 10_000, "b's first waiting");
      expect(granted).toEqual(['a', 'a', 'a']);
      gates[0]!.open(); // one of a's streams finishes: b (no sequence open) goes before a's fourth
      await eventually(() => granted.length === 4, 10_000, 'a place given');
      expect(granted[3]).toBe('b');
      gates[1]!.open();
      await eventually(() => granted.length === 5, 10_000, 'the next place given');
      expect(granted[4]).toBe('a');
      gates[2]!.open();
      gates[3]!.open();
      const all = await Promise.all([...aOpen, aWaiting, bWaiting]);
      all.forEach((r, i) => {
        expect(r).not.toBeInstanceOf(ServiceError);
        if (!(r instanceof ServiceError)) expect(verifies(keys[i === 4 ? 'b' : 'a']!.pem, msgs[i]!, r.signature)).toBe(true);
      });
    } finally {
      env.service.core.sequences.events.off('granted', onGrant);
    }
    await nothingLoaded('after the fairness run');
  });

  it('answers 429 BUSY beyond what one tenant may have waiting and 503 BUSY beyond what may wait in all', async () => {
    await restart({ maxSequences: 2, sequencesPerTenant: 1 });
    const g = gate();
    const msg = randomBytes(10_000);
    const signOf = (t: string) => outcome(env.client(t).sign(keys[t]!.handle, { message: gated(msg.subarray(0, 2048), msg.subarray(2048), g.go) }));
    const a1 = signOf('a');
    await eventually(() => stats().open === 1, 10_000, "a's first open");
    const a2 = signOf('a');
    await eventually(() => stats().waiting === 1, 10_000, "a's second waiting (its own limit of one open)");
    expect(await signOf('a')).toMatchObject({ status: 429, code: 'BUSY', retryAfter: 1 });
    const b1 = signOf('b');
    await eventually(() => stats().open === 2, 10_000, "b's first open");
    const c1 = signOf('c');
    await eventually(() => stats().waiting === 2, 10_000, "c's first waiting");
    expect(await signOf('d')).toMatchObject({ status: 503, code: 'BUSY', retryAfter: 1 });
    g.open();
    const done = await Promise.all([a1, a2, b1, c1]);
    ['a', 'a', 'b', 'c'].forEach((t, i) => {
      const r = done[i]!;
      expect(r, `${t}'s sign #${i}`).not.toBeInstanceOf(ServiceError);
      if (!(r instanceof ServiceError)) expect(verifies(keys[t]!.pem, msg, r.signature)).toBe(true);
    });
    expect(stats()).toMatchObject({ open: 0, waiting: 0 });
    await nothingLoaded('after the busy run');
  });

  it('fails streams whose sequences a TPM restart wiped out with a clear error, never a 500 or a hang', async () => {
    await restart();
    const from = env.commands.length;
    const g = gate();
    const msgA = randomBytes(30_000);
    const msgB = randomBytes(30_000);
    const a = outcome(env.client('a').sign(keys.a!.handle, { message: gated(msgA.subarray(0, 8192), msgA.subarray(8192), g.go) }));
    await eventually(() => stats().open === 1 && count(env, from, 'SequenceUpdate') > 0, 10_000, "a's sequence under way");
    const b = outcome(env.client('b').sign(keys.b!.handle, { message: gated(msgB.subarray(0, 8192), msgB.subarray(8192), g.go) }));
    await eventually(() => stats().open === 2 && stats().saved === 1, 10_000, "a saved out, b loaded");
    // swtpm dies and comes back (TPM Reset) while both streams wait for their next bytes.
    env.swtpm.kill();
    await env.swtpm.restart();
    g.open();
    for (const r of await Promise.all([a, b])) {
      expect(r).toBeInstanceOf(ServiceError);
      const e = r as ServiceError;
      expect(e.status).toBe(503);
      expect(e.code).toBe('TPM_UNAVAILABLE');
      expect(e.message).toMatch(/hash sequence/);
      expect(e.message).toMatch(/send the message again/);
    }
    expect(stats()).toMatchObject({ open: 0, loaded: 0, saved: 0 });
    await nothingLoaded('after the TPM restart');
    const msg = randomBytes(5000);
    const r = await env.client('a').sign(keys.a!.handle, { message: Readable.from([msg]) });
    expect(verifies(keys.a!.pem, msg, r.signature)).toBe(true);
  });
});

describe('sequence places (FairPlaces)', () => {
  const sig = new AbortController().signal;

  it('withdraws a waiter whose signal fires and gives its turn to the next', async () => {
    const places = new FairPlaces({ total: 2, perTenant: 2, what: 'hash sequence' });
    const held = [await places.acquire('a', sig), await places.acquire('a', sig)];
    const gone = new AbortController();
    const order: string[] = [];
    const b = places.acquire('b', gone.signal).then(
      () => order.push('b'),
      (e: unknown) => order.push(`b: ${(e as Error).message}`),
    );
    const c = places.acquire('c', sig).then((r) => (order.push('c'), r));
    expect(places.waiters).toBe(2);
    gone.abort(new Error('client gone'));
    await b;
    expect(places.waiters).toBe(1);
    held[0]!();
    held[0]!(); // a second call is a no-op, not a second free place
    (await c)();
    held[1]!();
    expect(order).toEqual(['b: client gone', 'c']);
    expect({ inUse: places.inUse, waiters: places.waiters }).toEqual({ inUse: 0, waiters: 0 });
  });

  it('gives a freed place to the waiting tenant holding the fewest, ties in the order they came', async () => {
    const places = new FairPlaces({ total: 3, perTenant: 3, what: 'hash sequence' });
    const held = [await places.acquire('a', sig), await places.acquire('a', sig), await places.acquire('a', sig)];
    const granted: string[] = [];
    const wait = (t: string) => places.acquire(t, sig).then((r) => (granted.push(t), r));
    const [wa, wb, wc] = [wait('a'), wait('b'), wait('c')];
    await expect(places.acquire('d', sig)).rejects.toMatchObject({ status: 503, code: 'BUSY' });
    held[0]!(); // a holds 2, b and c none: b came first
    await wb;
    held[1]!(); // a holds 1, c none
    await wc;
    held[2]!(); // only a waits
    await wa;
    expect(granted).toEqual(['b', 'c', 'a']);
  });

  it('refuses a tenant with as many waiting as it may hold (429) before the total (503)', async () => {
    const places = new FairPlaces({ total: 4, perTenant: 1, what: 'hash sequence' });
    await places.acquire('a', sig);
    void places.acquire('a', sig);
    await expect(places.acquire('a', sig)).rejects.toMatchObject({ status: 429, code: 'BUSY' });
  });
});
