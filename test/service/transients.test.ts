/**
 * The queue's account of transient handles follows the descriptors' declarations: what a job
 * loads and does not flush is flushed before the job settles (and reported); a job that
 * flushes, or whose session the TPM ended (continueSession clear), costs no extra command; a
 * handle kept on purpose (a loaded hash sequence) survives its job until some later command
 * flushes it. Against swtpm, counting the commands sent.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  Create,
  FlushContext,
  HashSequenceStart,
  TPM_ALG,
  TPM_RH,
  Tpm,
  TpmTransportError,
  akTemplate,
  createTransientEk,
  flush,
  policyAuth,
  policySecret,
  startPolicySession,
} from '../../src/tpm/index.js';
import { TpmQueue, type SweptEvent } from '../../src/service/tpm/queue.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('the queue sweeps what a job leaves loaded', () => {
  let sw: SwtpmInstance;
  let tpm: Tpm;
  let queue: TpmQueue;
  const sent: string[] = [];
  const swept: SweptEvent[] = [];

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = new Tpm(sw.transport(), { onExchange: (e) => sent.push(e.command) });
    queue = new TpmQueue(tpm, { capacity: 10, perTenant: 10 });
    queue.events.on('swept', (e: SweptEvent) => swept.push(e));
  });
  afterAll(async () => {
    await sw?.stop();
  });
  beforeEach(async () => {
    expect(await loadedHandles(tpm)).toEqual({ transient: [], sessions: [] });
    sent.length = 0;
    swept.length = 0;
  });

  it('a job that loads and forgets to flush is swept before it settles', async () => {
    const ek = await queue.submit('t', 'leaky', async (t) => (await createTransientEk(t, 'ecc')).handle);
    expect(swept).toEqual([expect.objectContaining({ tenant: 't', label: 'leaky', handles: [ek], failed: [] })]);
    expect(sent).toEqual(['CreatePrimary', 'FlushContext']);
    expect(await loadedHandles(tpm)).toEqual({ transient: [], sessions: [] });
  });

  it('a failing job is swept too, and fails with its own error', async () => {
    const boom = new Error('boom');
    await expect(
      queue.submit('t', 'leaky', async (t) => {
        await createTransientEk(t, 'ecc');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(swept.map((e) => e.handles.length)).toEqual([1]);
    expect(await loadedHandles(tpm)).toEqual({ transient: [], sessions: [] });
  });

  it('a job that flushes costs no extra command', async () => {
    await queue.submit('t', 'tidy', async (t) => {
      const ek = await createTransientEk(t, 'ecc');
      await flush(t, ek.handle);
    });
    expect(swept).toEqual([]);
    expect(sent).toEqual(['CreatePrimary', 'FlushContext']);
  });

  it('a session the TPM ended (continueSession clear) is not flushed again', async () => {
    await queue.submit('t', 'session', async (t) => {
      const ek = await createTransientEk(t, 'ecc');
      const s = await startPolicySession(t);
      await policySecret(t, s, TPM_RH.ENDORSEMENT);
      const empty = new Uint8Array(0);
      await t.run(
        Create,
        { parentHandle: ek, inSensitive: { userAuth: empty, data: empty }, inPublic: akTemplate('ecc'), outsideInfo: empty, creationPCR: [] },
        { auth: { parentHandle: policyAuth(s.handle, new Uint8Array(randomBytes(32)), { continueSession: false }) } },
      );
      await flush(t, ek);
    });
    expect(swept).toEqual([]);
    expect(sent).toEqual(['CreatePrimary', 'StartAuthSession', 'PolicySecret', 'Create', 'FlushContext']);
  });

  it('a handle kept on purpose outlives its job until a later command flushes it', async () => {
    const seq = await queue.submit('t', 'start', async (t) => {
      const { sequenceHandle } = await t.run(HashSequenceStart, { auth: new Uint8Array(0), hashAlg: TPM_ALG.SHA256 });
      queue.transients.keep(sequenceHandle);
      return sequenceHandle;
    });
    expect(swept).toEqual([]);
    expect(sent).toEqual(['HashSequenceStart']);
    expect((await loadedHandles(tpm)).transient).toEqual([seq]);
    sent.length = 0;
    await queue.submit('t', 'flush', (t) => t.run(FlushContext, { flushHandle: seq }), { lane: 'cleanup' });
    expect(queue.transients.kept.has(seq)).toBe(false); // released by FlushContext's declaration
    expect(sent).toEqual(['FlushContext']);
  });

  it("a flush runs after the job's signal fired; other commands do not", async () => {
    const ctl = new AbortController();
    const e = await queue
      .submit(
        't',
        'aborted',
        async (t) => {
          const ek = await createTransientEk(t, 'ecc');
          ctl.abort(new Error('client gone'));
          try {
            await createTransientEk(t, 'ecc');
          } finally {
            await flush(t, ek);
          }
        },
        { signal: ctl.signal },
      )
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ message: 'client gone' });
    expect(sent).toEqual(['CreatePrimary', 'FlushContext']);
    expect(swept).toEqual([]);
  });

  // Last: it closes the connection.
  it('after a transport failure nothing more is sent; the leftovers are reported for maintenance', async () => {
    const e = await queue
      .submit('t', 'broken', async (t) => {
        await createTransientEk(t, 'ecc');
        await tpm.transport.close();
        await createTransientEk(t, 'ecc');
      })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TpmTransportError);
    expect(sent).toEqual(['CreatePrimary', 'CreatePrimary']); // the second never reached the TPM
    expect(swept).toEqual([expect.objectContaining({ label: 'broken', handles: [expect.any(Number)], failed: [expect.any(Number)] })]);
  });
});
