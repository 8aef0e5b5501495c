/**
 * The TPM object cache: tenants' `blobs` keys stay loaded across queue jobs, so that a sign of
 * a hot key is Hash + Sign instead of a policy session, a Load under the EK and flushes.
 *
 * - Keyed by registry handle, and checked on every use against the entry's Name and owner
 *   record: a cache entry never serves another key, nor a key to anyone else.
 * - Loaded keys take object slots only while nobody else needs them: it is the queue's
 *   SlotLender, so before any command that loads an object (a cold Load, the EK, a hash
 *   sequence, certify's second key) with every slot the TPM guarantees taken, the least
 *   recently used idle key is context-saved and flushed. Its saved context brings it back with
 *   one ContextLoad; a TPM Reset makes saved contexts useless, and then it is loaded afresh.
 * - Slots: TPM_PT_HR_TRANSIENT_MIN (read once), at most 3 under the kernel's /dev/tpmrm (the
 *   kernel keeps three transient objects per open file, drivers/char/tpm/tpm2-space.c), and
 *   between uses it keeps one slot free.
 * - Forgotten on delete and purge (the object flushed), given up when the TPM was unreachable
 *   (the sweep flushes what is left) or handed a kept handle out again (restarted), and loaded
 *   again when the TPM answers that a kept handle names nothing.
 *
 * A `tpm`-store key's Name, once read at its persistent handle, is trusted until the same
 * events, so its sign is Hash + Sign too.
 */
import {
  ContextLoad,
  ContextSave,
  FlushContext,
  TPM_PT,
  TPM_RC,
  TpmError,
  getTpmProperty,
  type NamedHandle,
  type TPMS_CONTEXT,
  type TpmRunner,
} from '../../tpm/index.js';
import type { KeyEntry } from '../keys/registry.js';
import { isTpmUnreachable } from './error-mapping.js';
import type { SlotLender, Transients } from './transients.js';

/** Transient objects the kernel's resource manager keeps per open file. */
const KERNEL_SPACE_OBJECTS = 3;

export interface ObjectCacheOptions {
  /** Keys remembered (loaded or saved out); 0 turns the cache off. */
  size: number;
  /** The TPM is reached through the kernel resource manager (/dev/tpmrm*). */
  kernelSpace: boolean;
}

interface Cached {
  owner: string;
  name: string;
  /** Transient handle while loaded (kept in Transients). */
  loaded: number | undefined;
  /** Saved context while saved out (or after a save: loaded again with one ContextLoad). */
  context: TPMS_CONTEXT | undefined;
  /** Jobs using it right now: never saved out meanwhile. */
  pins: number;
  /** Forgotten (key deleted): whatever a running job loads for it is not kept. */
  dropped: boolean;
  /** Last use (Transients.tick): the lenders' one order. */
  used: number;
}

/** The TPM says the handle names nothing loaded (any handle position). */
export function handleGone(e: unknown): boolean {
  if (!(e instanceof TpmError)) return false;
  if (e.is(TPM_RC.HANDLE)) return true;
  return e.rc >= TPM_RC.REFERENCE_H0 && e.rc <= TPM_RC.REFERENCE_H6;
}

/** Out of memory is the moment's problem, not the saved context's. */
function outOfMemory(e: unknown): boolean {
  return e instanceof TpmError && (e.is(TPM_RC.OBJECT_MEMORY) || e.is(TPM_RC.MEMORY));
}

export class ObjectCache implements SlotLender {
  /** Least recently used first (Map keeps insertion order; a use re-inserts). */
  private readonly entries = new Map<number, Cached>();
  /** `tpm`-store keys whose Name was read at their persistent handle: handle → Name (hex). */
  private readonly trusted = new Map<number, string>();
  slots: number | undefined;
  /** Uses counted by how the key was found, for tests and stats. */
  readonly counts = { hits: 0, reloads: 0, loads: 0, evictions: 0, stale: 0 };

  constructor(
    private readonly transients: Transients,
    private readonly opts: ObjectCacheOptions,
  ) {
    if (opts.size > 0) transients.addLender(this);
  }

  get enabled(): boolean {
    return this.opts.size > 0;
  }

  /** Registry handles cached with a loaded object, least recently used first (tests, stats). */
  loadedKeys(): number[] {
    return [...this.entries].filter(([, c]) => c.loaded !== undefined).map(([h]) => h);
  }

  /** Transient handles of the cached keys loaded now (what a "nothing left loaded" check may ignore). */
  transientHandles(): number[] {
    return [...this.entries.values()].flatMap((c) => (c.loaded === undefined ? [] : [c.loaded]));
  }

  /**
   * Runs `fn` with the `blobs` key of `entry` loaded (`load`: TPM2_Load from its blobs, under the
   * EK or its app's parent); it stays loaded (or saved) afterwards — the key only, never a parent.
   */
  async withKey<T>(tpm: TpmRunner, entry: KeyEntry, load: () => Promise<NamedHandle>, fn: (key: NamedHandle) => Promise<T>): Promise<T> {
    if (this.slots === undefined) await this.learnSlots(tpm);
    let c = this.entries.get(entry.handle);
    if (c && (c.name !== entry.name || c.owner !== entry.owner)) {
      // Another key under the same handle (deleted and made again meanwhile): never served.
      await this.drop(tpm, entry.handle);
      c = undefined;
    }
    if (!c) {
      c = { owner: entry.owner, name: entry.name, loaded: undefined, context: undefined, pins: 0, dropped: false, used: this.transients.tick() };
      this.entries.set(entry.handle, c);
    }
    const name = Buffer.from(entry.name, 'hex');
    c.pins++;
    try {
      if (c.loaded !== undefined) {
        this.counts.hits++;
        try {
          return await fn({ handle: c.loaded, name });
        } catch (e) {
          if (!handleGone(e)) throw e;
          // The TPM no longer holds it (restarted behind our back): load it again, once.
          this.counts.stale++;
          this.unload(c);
        }
      }
      const handle = await this.bringIn(tpm, c, load);
      return await fn({ handle, name });
    } finally {
      c.pins--;
      this.touch(entry.handle, c);
      await this.trim(tpm).catch((e: unknown) => {
        // The operation's own outcome stands (trimmed next time); a TPM that stopped
        // answering voids what is kept.
        if (isTpmUnreachable(e)) this.lost();
      });
    }
  }

  /** ContextLoad of the saved context, or else Load from the blobs; kept unless dropped meanwhile. */
  private async bringIn(tpm: TpmRunner, c: Cached, load: () => Promise<NamedHandle>): Promise<number> {
    let handle: number | undefined;
    if (c.context) {
      try {
        handle = (await tpm.run(ContextLoad, { context: c.context })).loadedHandle;
        this.counts.reloads++;
      } catch (e) {
        if (!(e instanceof TpmError) || outOfMemory(e)) throw e;
        c.context = undefined; // refused (a TPM Reset voids saved contexts): Load instead
      }
    }
    if (handle === undefined) {
      handle = (await load()).handle;
      this.counts.loads++;
    }
    if (!c.dropped) {
      c.loaded = handle;
      this.transients.keep(handle);
    }
    return handle;
  }

  /** Between uses one slot stays free, and at most `size` keys are remembered. */
  private async trim(tpm: TpmRunner): Promise<void> {
    const slots = this.slots ?? 0;
    while (this.loadedKeys().length > Math.max(0, slots - 1) && (await this.reclaim(tpm))) {
      // saved out, least recently used first
    }
    for (const [h, c] of this.entries) {
      if (this.entries.size <= this.opts.size) break;
      if (c.pins === 0) await this.drop(tpm, h);
    }
  }

  /** SlotLender: saves out and flushes the least recently used idle loaded key. */
  async reclaim(tpm: TpmRunner): Promise<boolean> {
    for (const c of this.entries.values()) {
      if (c.loaded === undefined || c.pins > 0) continue;
      const handle = c.loaded;
      if (!c.context) {
        try {
          c.context = (await tpm.run(ContextSave, { saveHandle: handle })).context;
        } catch (e) {
          if (!(e instanceof TpmError)) throw e; // refused: it is loaded from its blobs next time
        }
      }
      try {
        await tpm.run(FlushContext, { flushHandle: handle });
      } catch (e) {
        if (!(e instanceof TpmError)) throw e; // gone already
      }
      this.unload(c);
      this.counts.evictions++;
      return true;
    }
    return false;
  }

  /** SlotLender: the last use of the least recently used idle loaded key. */
  idleSince(): number | undefined {
    for (const c of this.entries.values()) if (c.loaded !== undefined && c.pins === 0) return c.used;
    return undefined;
  }

  /** SlotLender: a kept handle was handed out again, so the TPM lost everything kept here. */
  reissued(): void {
    for (const c of this.entries.values()) if (c.loaded !== undefined) this.unload(c);
    this.trusted.clear();
  }

  /**
   * The TPM was unreachable (it may come back restarted): loaded handles are given up, not
   * flushed (the maintenance sweep flushes whatever is still there); saved contexts are kept
   * and tried (a TPM Reset makes them fail, and the key is loaded from its blobs).
   */
  lost(): void {
    this.reissued();
  }

  /**
   * The key at `handle` is being deleted: never served again. Returns its transient handle
   * if loaded, which the caller flushes in a job (still kept until then: no sweep races it).
   */
  forget(handle: number): number | undefined {
    this.trusted.delete(handle);
    const c = this.entries.get(handle);
    if (!c) return undefined;
    this.entries.delete(handle);
    c.dropped = true;
    c.context = undefined;
    const loaded = c.loaded;
    c.loaded = undefined;
    return loaded;
  }

  /** Flushes (in this job) and forgets the key at `handle`. */
  private async drop(tpm: TpmRunner, handle: number): Promise<void> {
    const loaded = this.forget(handle);
    if (loaded === undefined) return;
    try {
      await tpm.run(FlushContext, { flushHandle: loaded });
    } catch (e) {
      if (!(e instanceof TpmError)) throw e;
      this.transients.release(loaded);
    }
  }

  /**
   * The service is stopping: every loaded key is flushed (a TPM without a resource manager, as
   * swtpm, would keep it) and everything is forgotten. Errors are the caller's to ignore.
   */
  async clear(tpm: TpmRunner): Promise<void> {
    for (const h of [...this.entries.keys()]) await this.drop(tpm, h);
    this.trusted.clear();
  }

  /** Whether the persistent object of a `tpm`-store key was read with this entry's Name. */
  trusts(entry: KeyEntry): boolean {
    return this.enabled && this.trusted.get(entry.handle) === entry.name;
  }

  trust(entry: KeyEntry): void {
    if (this.enabled) this.trusted.set(entry.handle, entry.name);
  }

  distrust(handle: number): void {
    this.trusted.delete(handle);
  }

  private unload(c: Cached): void {
    if (c.loaded !== undefined) this.transients.release(c.loaded);
    c.loaded = undefined;
  }

  private touch(handle: number, c: Cached): void {
    if (this.entries.get(handle) !== c) return; // forgotten meanwhile
    this.entries.delete(handle);
    this.entries.set(handle, c);
    c.used = this.transients.tick();
  }

  private async learnSlots(tpm: TpmRunner): Promise<void> {
    const min = (await getTpmProperty(tpm, TPM_PT.HR_TRANSIENT_MIN)) ?? KERNEL_SPACE_OBJECTS;
    this.slots = this.opts.kernelSpace ? Math.min(min, KERNEL_SPACE_OBJECTS) : min;
  }
}
