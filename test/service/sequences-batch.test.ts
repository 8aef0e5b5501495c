/**
 * Batched streaming: the SequenceUpdates of one received body piece run as one queue job while
 * the TPM keeps within the job's time budget, and as several jobs — other tenants' jobs in
 * between — when it does not (budget 0: one command per job). Whatever the pieces' sizes, the
 * TPM gets every byte once, in order, in full 1024-byte commands (the last 1..1024 bytes go
 * with SequenceComplete), and the digest is the message's. Asserted on job events, command
 * counts and digests, never on timing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_ALG, Tpm, type TpmRunner } from '../../src/tpm/index.js';
import { TpmQueue, type JobEvent } from '../../src/service/tpm/queue.js';
import { SequenceManager } from '../../src/service/tpm/sequences.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';

const never = new AbortController().signal;

async function* piecesOf(message: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < message.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield message.subarray(at, at + n);
    at += n;
  }
}

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('batched SequenceUpdates', () => {
  let sw: SwtpmInstance;
  let tpm: Tpm;
  const commands: string[] = [];
  let queue: TpmQueue;
  const starts: JobEvent[] = [];

  const manager = (jobBudgetMs?: number): SequenceManager =>
    new SequenceManager(queue, { hashSlots: 1, maxSequences: 4, sequencesPerTenant: 2, ...(jobBudgetMs === undefined ? {} : { jobBudgetMs }) });
  const since = (from: number, name: string): number => commands.slice(from).filter((c) => c === name).length;
  const jobsSince = (from: number, label: string, tenant?: string): number =>
    starts.slice(from).filter((e) => e.label === label && (tenant === undefined || e.tenant === tenant)).length;

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = new Tpm(sw.transport(), { onExchange: (e) => commands.push(e.command) });
    queue = new TpmQueue(tpm, { capacity: 64, perTenant: 16 });
    queue.events.on('start', (e: JobEvent) => starts.push(e));
  });
  afterAll(async () => {
    await sw?.stop();
  });

  it('hashes each body piece in one job when the TPM keeps within the budget', async () => {
    const seqs = manager(60_000); // a budget no swtpm command comes near: the count is exact
    const message = randomBytes(3 * 128 * 1024);
    const [c0, j0] = [commands.length, starts.length];
    const r = await seqs.hash('a', piecesOf(message, [128 * 1024]), TPM_ALG.SHA256, never);
    expect(Buffer.from(r.digest)).toEqual(createHash('sha256').update(message).digest());
    expect(r.length).toBe(message.length);
    expect(jobsSince(j0, 'sequence-update')).toBe(3); // 128 SequenceUpdates each
    expect(since(c0, 'SequenceUpdate')).toBe(message.length / 1024 - 1);
    expect(since(c0, 'SequenceComplete')).toBe(1);
    expect(seqs.stats()).toEqual({ open: 0, loaded: 0, saved: 0, waiting: 0 });
  });

  it('with no budget left, one command per job, and other tenants run in between', async () => {
    const seqs = manager(0);
    const message = randomBytes(8 * 1024 + 1);
    const [c0, j0] = [commands.length, starts.length];
    const others: Array<Promise<unknown>> = [];
    let seen = 0;
    // Each time the stream's update job starts, tenant b asks for a job: round-robin puts it
    // before the stream's next one.
    const onStart = (e: JobEvent): void => {
      if (e.tenant === 'a' && e.label === 'sequence-update' && seen++ < 3) others.push(queue.submit('b', 'other', async () => {}));
    };
    queue.events.on('start', onStart);
    try {
      const r = await seqs.hash('a', piecesOf(message, [message.length]), TPM_ALG.SHA256, never);
      expect(Buffer.from(r.digest)).toEqual(createHash('sha256').update(message).digest());
    } finally {
      queue.events.off('start', onStart);
    }
    await Promise.all(others);
    expect(since(c0, 'SequenceUpdate')).toBe(8);
    expect(jobsSince(j0, 'sequence-update')).toBe(8);
    const order = starts.slice(j0).filter((e) => e.label === 'sequence-update' || e.tenant === 'b').map((e) => e.tenant);
    expect(order.slice(0, 6)).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
  });

  it('sends every byte once, in full commands, whatever the pieces', async () => {
    const seqs = manager();
    const cases: Array<{ length: number; sizes: number[] }> = [
      { length: 1025, sizes: [1] }, // a byte at a time
      { length: 4096, sizes: [1024] }, // exact multiples: the last full buffer waits for SequenceComplete
      { length: 5000, sizes: [1023, 1025, 7] },
      { length: 3 * 1024 + 1, sizes: [3 * 1024 + 1] },
      { length: 70 * 1024 + 5, sizes: [65_536, 1, 4000] },
    ];
    for (const { length, sizes } of cases) {
      const message = randomBytes(length);
      const c0 = commands.length;
      const r = await seqs.hash('a', piecesOf(message, sizes), TPM_ALG.SHA256, never);
      expect(Buffer.from(r.digest), `${length} bytes in pieces of ${sizes.join('/')}`).toEqual(createHash('sha256').update(message).digest());
      expect(r.length).toBe(length);
      expect(since(c0, 'SequenceUpdate')).toBe(Math.floor((length - 1) / 1024));
    }
    await queue.idle();
    expect(await loadedHandles(tpm)).toEqual({ transient: [], sessions: [] });
  });

  it('over a runner that is not the executor, sends the updates through it: same commands, same digests', async () => {
    // The queue's own executor gets refilled frames (update-frame.ts); any other runner the
    // generic command path. Both must hash alike.
    const wrapper: TpmRunner = { run: (c, i, o) => tpm.run(c, i, o), runWithAuths: (c, i, o) => tpm.runWithAuths(c, i, o), connection: tpm.connection };
    const seqs = new SequenceManager(new TpmQueue(wrapper, { capacity: 64, perTenant: 16 }), { hashSlots: 1, maxSequences: 4, sequencesPerTenant: 2 });
    for (const { length, sizes } of [
      { length: 5000, sizes: [1023, 1025, 7] },
      { length: 9 * 1024, sizes: [4096] },
    ]) {
      const message = randomBytes(length);
      const c0 = commands.length;
      const r = await seqs.hash('a', piecesOf(message, sizes), TPM_ALG.SHA256, never);
      expect(Buffer.from(r.digest)).toEqual(createHash('sha256').update(message).digest());
      expect(since(c0, 'SequenceUpdate')).toBe(Math.floor((length - 1) / 1024));
    }
    expect(await loadedHandles(tpm)).toEqual({ transient: [], sessions: [] });
  });
});
