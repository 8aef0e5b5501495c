/**
 * The TPM queue under load from several tenants: round-robin between tenants (a tenant with
 * fifty queued requests delays another tenant's single request by at most a couple of
 * operations — asserted on the order jobs start, never on timing), a per-tenant cap (429) and
 * a global cap (503), both with Retry-After.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/service/client/client.js';
import type { JobEvent } from '../../src/service/tpm/queue.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { eventually, leftLoaded, startEnv, type TestEnv } from './env.js';
import { skipUnlessCI } from '../helpers/ci.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('fair TPM queue', () => {
  let env: TestEnv;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    for (const t of ['a', 'b', 'c']) keys[t] = (await env.client(t).createKey({ type: 'ecc' })).handle;
  });
  afterAll(async () => {
    await env?.stop();
  });

  it("serves another tenant's single request within a couple of jobs of a 50-request backlog", async () => {
    const events: Array<{ kind: 'enqueue' | 'start' } & JobEvent> = [];
    const q = env.service.core.queue;
    const onEnqueue = (e: JobEvent): void => void events.push({ kind: 'enqueue', ...e });
    const onStart = (e: JobEvent): void => void events.push({ kind: 'start', ...e });
    q.events.on('enqueue', onEnqueue);
    q.events.on('start', onStart);
    try {
      const msg = new Uint8Array(32);
      const a = env.client('a');
      // Hold the TPM while a's fifty requests queue up, so the backlog is certain.
      let release!: () => void;
      const held = q.submit('#test', 'hold', () => new Promise<void>((r) => (release = r)));
      const flood = Array.from({ length: 50 }, () => a.sign(keys.a!, { message: msg }));
      await eventually(() => events.filter((e) => e.kind === 'enqueue' && e.tenant === 'a').length === 50, 10_000, "a's backlog");
      const single = [env.client('b').sign(keys.b!, { message: msg }), env.client('c').sign(keys.c!, { message: msg })];
      await eventually(() => events.filter((e) => e.kind === 'enqueue' && e.tenant !== 'a' && e.tenant !== '#test').length === 2, 10_000, 'b and c queued');
      release();
      await held;
      const results = await Promise.all([...flood, ...single]);
      expect(results).toHaveLength(52);

      for (const t of ['b', 'c']) {
        const enq = events.findIndex((e) => e.kind === 'enqueue' && e.tenant === t);
        const seq = events[enq]!.seq;
        const start = events.findIndex((e) => e.kind === 'start' && e.seq === seq);
        expect(enq).toBeGreaterThanOrEqual(0);
        expect(start).toBeGreaterThan(enq);
        const aJobsBetween = events.slice(enq, start).filter((e) => e.kind === 'start' && e.tenant === 'a').length;
        // One of a's jobs may be running when t arrives, and one more may be ahead in the ring.
        expect(aJobsBetween, `a's jobs started while ${t} waited`).toBeLessThanOrEqual(2);
        // And t was not simply early: a still had plenty waiting behind it.
        const aStartsAfter = events.slice(start).filter((e) => e.kind === 'start' && e.tenant === 'a').length;
        expect(aStartsAfter).toBeGreaterThan(30);
      }
    } finally {
      q.events.off('enqueue', onEnqueue);
      q.events.off('start', onStart);
    }
  });

  it('answers 429 beyond the per-tenant cap and 503 beyond the global cap, with Retry-After', async () => {
    await env.restartService({ queuePerTenant: 4, queueCapacity: 6 });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    // Hold the TPM so that nothing leaves the queue while it fills.
    let release!: () => void;
    const held = env.service.core.queue.submit('#test', 'hold', () => new Promise<void>((r) => (release = r)));
    const msg = new Uint8Array(16);
    const outcome = (p: Promise<unknown>): Promise<number | ServiceError> =>
      p.then(
        () => 200,
        (e: unknown) => {
          if (e instanceof ServiceError) return e;
          throw e;
        },
      );
    const refused: ServiceError[] = [];
    const track = (p: Promise<number | ServiceError>): Promise<number | ServiceError> =>
      p.then((r) => {
        if (r instanceof ServiceError) refused.push(r);
        return r;
      });
    const a = Array.from({ length: 8 }, () => track(outcome(env.client('a').sign(keys.a!, { message: msg }))));
    await eventually(() => refused.length === 4 && env.service.core.queue.depth === 5, 5000, "a's four waiting, four refused");
    const b = Array.from({ length: 4 }, () => track(outcome(env.client('b').sign(keys.b!, { message: msg }))));
    await eventually(() => refused.length === 6, 5000, "b's two refused");
    release();
    await held;
    const ra = await Promise.all(a);
    const rb = await Promise.all(b);
    expect(ra.filter((r) => r === 200)).toHaveLength(4);
    for (const e of ra.filter((r): r is ServiceError => r !== 200)) expect(e).toMatchObject({ status: 429, code: 'BUSY', retryAfter: 1 });
    expect(rb.filter((r) => r === 200)).toHaveLength(2);
    for (const e of rb.filter((r): r is ServiceError => r !== 200)) expect(e).toMatchObject({ status: 503, code: 'BUSY', retryAfter: 1 });
  });

  it('answers 504 DEADLINE to requests whose deadline passes while they wait, leaving the TPM clean', async () => {
    await env.restartService({ deadlineMs: 300, queuePerTenant: 64, queueCapacity: 256 });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    // Hold the TPM with a job of our own until every request below has given up.
    let release!: () => void;
    const held = env.service.core.queue.submit('#test', 'hold', () => new Promise<void>((r) => (release = r)));
    const a = env.client('a');
    const waiting = [
      ...Array.from({ length: 4 }, () => a.sign(keys.a!, { message: new Uint8Array(100) })), // one job each
      ...Array.from({ length: 2 }, () => a.sign(keys.a!, { message: new Uint8Array(5000) })), // hash slot, then per-command jobs
      env.client('b').createKey({ type: 'ecc' }),
    ];
    const settled = await Promise.allSettled(waiting);
    release();
    await held;
    for (const r of settled) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 504, code: 'DEADLINE' });
    }
    // Nothing was half done: no key for b, nothing loaded, and the next request works.
    expect((await env.client('b').listKeys()).map((k) => k.handle)).toEqual([keys.b]);
    expect((await a.sign(keys.a!, { message: new Uint8Array(5000) })).messageLength).toBe(5000);
    expect(await leftLoaded(env)).toEqual({ transient: [], sessions: [] });
  });
});
