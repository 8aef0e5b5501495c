/**
 * Hash sequences, virtualized the way a resource manager virtualizes objects. A message longer
 * than one TPM input buffer is hashed with a sequence that lives as long as its body streams
 * in, which can be long. This module owns every such sequence:
 *
 * - at most `hashSlots` are loaded in the TPM at once; the others are context-saved
 *   (ContextSave, then FlushContext of the object) and loaded back (ContextLoad) when their
 *   next bytes arrive, the least recently used loaded one being saved out to make room. So a
 *   client trickling its body never keeps a TPM slot from anybody else;
 * - every TPM step runs inside a queue job, one job = [save out another][load this] then the
 *   SequenceUpdates of one received body piece — as many as fit in a time budget (jobBudgetMs);
 *   what is left goes back in the queue as another job, so other tenants' jobs interleave
 *   however slow the TPM is, and a fast one hashes a piece in one job. The updates are one
 *   prebuilt frame per sequence, refilled (update-frame.ts): a fast TPM hashes 1 KiB in less
 *   time than marshalling a command generically takes;
 * - at most `maxSequences` are open (loaded or saved) and `sequencesPerTenant` per tenant,
 *   places being handed out fairly (fair-places.ts);
 * - every ending (completed, error, client gone, deadline, 408) flushes the sequence or drops
 *   its saved context; a TPM that became unreachable, or refuses a saved context (restarted),
 *   fails the affected streams with a clear 503, never a 500 or a hang.
 *
 * Each sequence gets a random auth value, so a command can only ever reach the sequence it
 * was meant for: after a TPM reset the service did not notice, a stale handle that now names
 * another sequence is refused by the TPM instead of mixing two tenants' messages.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hex32 } from '../../tpm/constants.js';
import {
  ContextLoad,
  ContextSave,
  FlushContext,
  HashSequenceStart,
  SequenceComplete,
  SequenceUpdate,
  TPM_RC,
  TPM_RH,
  Tpm,
  TpmError,
  maxInputBuffer,
  passwordAuth,
  tpmHash,
  type HashResult,
  type TPMS_CONTEXT,
  type TpmRunner,
} from '../../tpm/index.js';
import { ServiceError } from '../protocol/errors.js';
import { isTpmUnreachable } from './error-mapping.js';
import { FairPlaces } from './fair-places.js';
import type { JobEvent, TpmQueue } from './queue.js';
import type { Transients } from './transients.js';
import { UpdateFrame } from './update-frame.js';

/** Largest message hashed with one TPM2_Hash, without a sequence (the codec's TPM2B_MAX_BUFFER). */
export const SINGLE_HASH_MAX = 1024;
/** How long one job of SequenceUpdates may hold the queue (ms) before the rest waits its turn. */
export const JOB_BUDGET_MS = 10;

export interface SequenceOptions {
  /** Sequences loaded in the TPM at once. */
  hashSlots: number;
  /** Sequences open at once, loaded or saved. */
  maxSequences: number;
  sequencesPerTenant: number;
  /** Time budget of one update job, ms (default JOB_BUDGET_MS); a job sends at least one command. */
  jobBudgetMs?: number;
  /** Asks for a leftover sweep when an object may have stayed loaded unaccounted for. */
  onLeak?: () => void;
}

interface Sequence {
  tenant: string;
  auth: Uint8Array;
  /** Chunk size: the TPM's input buffer. */
  size: number;
  /** Set while loaded. */
  handle: number | undefined;
  /** Set while saved out. */
  context: TPMS_CONTEXT | undefined;
  /** The SequenceUpdate frame for its handle, refilled for each update (direct path). */
  frame: UpdateFrame | undefined;
  /** Bytes received but not yet sent (1..size once anything was sent: SequenceComplete's share). */
  tail: Uint8Array;
  length: number;
  /** Why it can no longer be used (the TPM lost it). */
  lost: ServiceError | undefined;
  /** Completed or closed: its place is free. */
  ended: boolean;
  release: () => void;
}

const EMPTY = new Uint8Array(0);

function lostError(detail: string, e?: unknown): ServiceError {
  const d = e instanceof TpmError ? { tpmRc: hex32(e.rc), tpmText: e.message } : {};
  return new ServiceError(503, 'TPM_UNAVAILABLE', `the hash sequence of your message is gone: ${detail}; send the message again`, { retryAfter: 2, cause: e, ...d });
}

/** TPM answers meaning the handle no longer names this sequence (gone, or another object now). */
function notOurs(e: unknown): e is TpmError {
  return e instanceof TpmError && [TPM_RC.HANDLE, TPM_RC.AUTH_FAIL, TPM_RC.BAD_AUTH, TPM_RC.MODE, TPM_RC.TYPE, TPM_RC.REFERENCE_H0].some((c) => e.is(c));
}

async function* pieces(message: Uint8Array | AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (message instanceof Uint8Array) yield message;
  else yield* message;
}

export class SequenceManager {
  /** 'granted' ({ tenant }): a sequence place was given. */
  readonly events = new EventEmitter();
  /** Loaded sequences, least recently used first. */
  private readonly loaded: Sequence[] = [];
  private readonly open = new Set<Sequence>();
  private readonly places: FairPlaces;
  /** Loaded sequences stay loaded across jobs: kept here, so that no sweep flushes them. */
  private readonly live: Transients;
  /**
   * The queue's own executor, when it is one: SequenceUpdates are sent on it as refilled frames
   * (update-frame.ts), from inside the job, instead of through the job's generic runner.
   */
  private readonly direct: Tpm | undefined;

  constructor(
    private readonly queue: TpmQueue,
    private readonly opts: SequenceOptions,
  ) {
    this.live = queue.transients;
    this.direct = queue.tpm instanceof Tpm ? queue.tpm : undefined;
    this.places = new FairPlaces({ total: opts.maxSequences, perTenant: opts.sequencesPerTenant, what: 'hash sequence' });
    this.places.events.on('granted', (e) => this.events.emit('granted', e));
    // The TPM went away (and may come back reset): no handle or saved context can be trusted.
    queue.events.on('done', (ev: JobEvent & { error?: unknown }) => {
      if (ev.error !== undefined && isTpmUnreachable(ev.error)) {
        for (const s of this.open) this.lose(s, lostError('the TPM was unreachable while it was being hashed', ev.error));
      }
    });
  }

  stats(): { open: number; loaded: number; saved: number; waiting: number } {
    let saved = 0;
    for (const s of this.open) if (s.context) saved++;
    return { open: this.open.size, loaded: this.loaded.length, saved, waiting: this.places.waiters };
  }

  /**
   * Hashes a message in the TPM: digest, HASHCHECK ticket (owner hierarchy; a NULL ticket for
   * data starting with TPM_GENERATED_VALUE) and length — as the library's tpmHash. Up to one
   * input buffer: one TPM2_Hash job, no sequence. Beyond: a sequence, taken when the second
   * buffer's first byte arrives.
   */
  async hash(tenant: string, message: Uint8Array | AsyncIterable<Uint8Array>, hashAlg: number, signal: AbortSignal): Promise<HashResult> {
    const it = pieces(message)[Symbol.asyncIterator]();
    try {
      const head: Uint8Array[] = [];
      let headLength = 0;
      for (;;) {
        if (headLength > SINGLE_HASH_MAX) break;
        const n = await it.next();
        if (n.done) {
          const data = Buffer.concat(head, headLength);
          return await this.queue.submit(tenant, 'hash', (tpm) => tpmHash(tpm, data, hashAlg), { signal });
        }
        head.push(n.value);
        headLength += n.value.length;
      }
      const seq = await this.start(tenant, hashAlg, signal);
      try {
        await this.update(seq, head.length === 1 ? head[0]! : Buffer.concat(head, headLength), signal);
        for (;;) {
          const n = await it.next();
          if (n.done) break;
          await this.update(seq, n.value, signal);
        }
        return await this.complete(seq, signal);
      } finally {
        await this.close(seq);
      }
    } finally {
      await it.return?.(undefined);
    }
  }

  private async start(tenant: string, hashAlg: number, signal: AbortSignal): Promise<Sequence> {
    const release = await this.places.acquire(tenant, signal);
    const auth = randomBytes(16);
    auth[15] = (auth[15] ?? 0) | 1; // the TPM ignores trailing zeros of auth values; keep all 16
    const seq: Sequence = { tenant, auth, size: SINGLE_HASH_MAX, handle: undefined, context: undefined, frame: undefined, tail: EMPTY, length: 0, lost: undefined, ended: false, release };
    this.open.add(seq);
    try {
      await this.queue.submit(
        tenant,
        'sequence-start',
        async (tpm) => {
          seq.size = await maxInputBuffer(tpm);
          if (seq.lost) throw seq.lost; // the TPM went away while this job waited
          await this.makeRoom(tpm);
          const r = await tpm.run(HashSequenceStart, { auth, hashAlg });
          this.setLoaded(seq, r.sequenceHandle);
        },
        { signal },
      );
    } catch (e) {
      await this.close(seq);
      throw this.explain(seq, e);
    }
    return seq;
  }

  /**
   * Sends all but the last 1..size bytes received so far: one job for the piece while the TPM
   * keeps within the budget, more jobs otherwise. Each update's bytes are copied into the
   * sequence's frame (the generic path: sent from where they lie); only the unsent tail
   * (≤ size) is kept, the piece itself is not.
   */
  private async update(seq: Sequence, piece: Uint8Array, signal: AbortSignal): Promise<void> {
    if (seq.lost) throw seq.lost;
    seq.length += piece.length;
    const size = seq.size;
    const total = seq.tail.length + piece.length;
    let sendable = total === 0 ? 0 : total - (((total - 1) % size) + 1);
    let at = 0; // bytes of `piece` sent
    const budget = this.opts.jobBudgetMs ?? JOB_BUDGET_MS;
    const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.length); // a view, for Buffer#copy
    while (sendable > 0) {
      await this.run(seq, 'sequence-update', signal, async (g, handle) => {
        const until = performance.now() + budget;
        const direct = this.direct;
        const f = direct === undefined ? undefined : this.frameOf(seq, handle);
        do {
          const fromPiece = size - seq.tail.length;
          if (f !== undefined) {
            signal.throwIfAborted(); // as the job's runner does before each command
            if (seq.tail.length > 0) f.frame.set(seq.tail, f.dataAt);
            bytes.copy(f.frame, f.dataAt + seq.tail.length, at, at + fromPiece);
            UpdateFrame.check(await direct!.exchange(SequenceUpdate.name, f.frame));
          } else {
            const buffer = seq.tail.length > 0 ? Buffer.concat([seq.tail, piece.subarray(at, at + fromPiece)]) : piece.subarray(at, at + size);
            await g.run(SequenceUpdate, { sequenceHandle: handle, buffer }, { auth: { sequenceHandle: passwordAuth(seq.auth) } });
          }
          seq.tail = EMPTY;
          at += fromPiece;
          sendable -= size;
        } while (sendable > 0 && performance.now() < until);
      });
    }
    const rest = piece.subarray(at);
    seq.tail = seq.tail.length > 0 ? Buffer.concat([seq.tail, rest]) : Uint8Array.from(rest); // a copy: the piece is not kept
  }

  /** The sequence's update frame for `handle` (made again when it was loaded at another handle). */
  private frameOf(seq: Sequence, handle: number): UpdateFrame {
    if (seq.frame?.handle !== handle || seq.frame.size !== seq.size) seq.frame = new UpdateFrame(handle, seq.auth, seq.size);
    return seq.frame;
  }

  private complete(seq: Sequence, signal: AbortSignal): Promise<HashResult> {
    return this.run(seq, 'sequence-complete', signal, async (g, handle) => {
      const r = await g.run(
        SequenceComplete,
        { sequenceHandle: handle, buffer: seq.tail, hierarchy: TPM_RH.OWNER },
        { auth: { sequenceHandle: passwordAuth(seq.auth) } },
      );
      this.unload(seq); // SequenceComplete flushed the object (its descriptor's `flushes`)
      this.end(seq);
      return { digest: r.result, validation: r.validation, length: seq.length };
    });
  }

  /** One queue job on `seq`: loaded first (saving another out if need be), then `fn`. */
  private run<T>(seq: Sequence, label: string, signal: AbortSignal, fn: (tpm: TpmRunner, handle: number) => Promise<T>): Promise<T> {
    return this.queue.submit(
      seq.tenant,
      label,
      async (tpm) => {
        const handle = await this.ensureLoaded(tpm, seq);
        try {
          return await fn(tpm, handle);
        } catch (e) {
          if (notOurs(e)) {
            this.lose(seq, lostError('the TPM no longer holds it (was the TPM restarted?)', e));
            throw seq.lost;
          }
          throw e;
        } finally {
          this.touch(seq);
        }
      },
      { signal },
    ).catch((e: unknown) => {
      throw this.explain(seq, e);
    });
  }

  /**
   * A job that failed because the TPM became unreachable has lost its sequence (the queue's
   * 'done' listener has already given up every open one): the stream's owner is told so. The
   * job itself fails with the transport error, so the supervisor sees the outage.
   */
  private explain(seq: Sequence, e: unknown): unknown {
    return isTpmUnreachable(e) && seq.lost ? seq.lost : e;
  }

  private async ensureLoaded(g: TpmRunner, seq: Sequence): Promise<number> {
    if (seq.lost) throw seq.lost;
    if (seq.handle !== undefined) return seq.handle;
    const context = seq.context!;
    await this.makeRoom(g);
    let loadedHandle: number;
    try {
      ({ loadedHandle } = await g.run(ContextLoad, { context }));
    } catch (e) {
      // Out of object memory is the moment's problem (503 BUSY), not the context's.
      if (e instanceof TpmError && !e.is(TPM_RC.OBJECT_MEMORY) && !e.is(TPM_RC.MEMORY)) {
        this.lose(seq, lostError('the TPM refused its saved state (was the TPM restarted?)', e));
        throw seq.lost;
      }
      throw e;
    }
    seq.context = undefined;
    this.setLoaded(seq, loadedHandle);
    return loadedHandle;
  }

  /** Saves out least recently used sequences until one more may be loaded. */
  private async makeRoom(g: TpmRunner): Promise<void> {
    while (this.loaded.length >= this.opts.hashSlots) {
      const victim = this.loaded[0]!;
      const handle = victim.handle!;
      if (victim.ended) {
        // Closed, its flush job not yet run: flush now instead of saving.
        await g.run(FlushContext, { flushHandle: handle }).catch(() => this.opts.onLeak?.());
        this.unload(victim);
        continue;
      }
      let context: TPMS_CONTEXT;
      try {
        ({ context } = await g.run(ContextSave, { saveHandle: handle }));
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        this.lose(victim, lostError('the TPM could not save it to make room for another', e));
        await g.run(FlushContext, { flushHandle: handle }).catch(() => {});
        continue;
      }
      try {
        await g.run(FlushContext, { flushHandle: handle });
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        this.opts.onLeak?.(); // saved, but maybe still loaded: the leftover sweep will see to it
      }
      this.unload(victim);
      victim.context = context;
    }
  }

  /**
   * Ends a sequence on any path: a loaded one is flushed (a cleanup job: it runs even after
   * the request was aborted), a saved context is dropped (it holds no TPM memory).
   */
  private async close(seq: Sequence): Promise<void> {
    if (seq.ended) return;
    this.end(seq);
    seq.context = undefined;
    if (seq.handle === undefined) return;
    await this.queue
      .submit(
        seq.tenant,
        'sequence-flush',
        async (tpm) => {
          const h = seq.handle;
          if (h === undefined) return; // flushed already to make room
          try {
            await tpm.run(FlushContext, { flushHandle: h });
          } catch (e) {
            if (!(e instanceof TpmError)) throw e; // gone already
          } finally {
            this.unload(seq);
          }
        },
        { lane: 'cleanup' },
      )
      .catch(() => {}); // TPM unreachable: every sequence is lost and the sweep runs later
  }

  private end(seq: Sequence): void {
    seq.ended = true;
    this.open.delete(seq);
    seq.release();
  }

  /** The TPM lost the sequence (or it cannot be trusted): forget handle and context, free the place. */
  private lose(seq: Sequence, reason: ServiceError): void {
    if (seq.lost) return;
    seq.lost = reason;
    seq.context = undefined;
    if (seq.handle !== undefined) this.unload(seq);
    seq.release();
  }

  private setLoaded(seq: Sequence, handle: number): void {
    seq.handle = handle;
    this.loaded.push(seq);
    this.live.keep(handle);
  }

  /** Flushed (the job's account released it already) or given up (the next sweep may flush it). */
  private unload(seq: Sequence): void {
    const i = this.loaded.indexOf(seq);
    if (i >= 0) this.loaded.splice(i, 1);
    if (seq.handle !== undefined) this.live.release(seq.handle);
    seq.handle = undefined;
  }

  private touch(seq: Sequence): void {
    const i = this.loaded.indexOf(seq);
    if (i >= 0 && i !== this.loaded.length - 1) {
      this.loaded.splice(i, 1);
      this.loaded.push(seq);
    }
  }
}
