/**
 * The tenants' keys: create, delete, sign — each a sequence of registry transitions, file
 * writes and TPM queue jobs ordered so that a crash between any two steps is resolvable (see
 * registry.ts and recovery.ts). Callers have already authorized the tenant for the key.
 */
import {
  FlushContext,
  TPM_PT,
  TPM_RH,
  TpmError,
  TPM_RC,
  createAk,
  createAppParent,
  createGeneralKey,
  evictPersistent,
  formatSignature,
  getTpmProperty,
  listHandles,
  persistKey,
  publicToPem,
  readPublic,
  signDigest,
  tpmHash,
  withAppParent,
  type GeneralKeySpec,
  type KeyBlobs,
  type TpmRunner,
  type PublicInfo,
  type CreatedKey,
  type NamedHandle,
  type TPMT_PUBLIC,
  type TPMT_SIGNATURE,
  type TPMT_TK_HASHCHECK,
} from '../../tpm/index.js';
import type { BlobStore, StoredBlobs } from './blob-store.js';
import { crashPoint } from '../tpm/crash-points.js';
import { conflict, quotaExceeded, unauthenticated, unsupported } from '../protocol/errors.js';
import { isTpmUnreachable } from '../tpm/error-mapping.js';
import { formatHandle } from '../protocol/handles.js';
import type { HandlePool } from './pool.js';
import { HASH_ALG, type HashName, type KeyType, type SignFormat } from '../protocol/params.js';
import type { TpmQueue } from '../tpm/queue.js';
import { isGeneral, type KeyEntry, type KeyRegistry, type KeyStoreKind } from './registry.js';
import type { EccCurve, KeyScheme, KeyUsage, RsaBits } from '../protocol/vocabulary.js';
import type { AppParents } from './app-parents.js';
import { SINGLE_HASH_MAX, type SequenceManager } from '../tpm/sequences.js';
import { recordOf, type Tenant } from '../tenants/tenants.js';
import type { KeysInChange } from './in-change.js';
import { persistEntryKey, withEntryKey, type KeyMaterial } from './key-in-tpm.js';
import type { MaintenanceRequests } from '../tpm/maintenance.js';
import type { ObjectCache } from '../tpm/object-cache.js';


export interface KeyManagerOptions {
  keyStore: KeyStoreKind;
  pool: HandlePool;
  /** tpm mode: persistent slots that must stay free for EVE. */
  freeFloor: number;
  /**
   * Whether a tenant record is configured right now (default: always). Checked inside the
   * registry update that commits a key, so a purge, ordered in the same chain, never misses one.
   */
  ownerAlive?: (record: string) => boolean;
  /** Keeps hot keys loaded across jobs (absent: every use loads and flushes). */
  cache?: ObjectCache;
  /** The apps' storage parents, under which general keys are made. */
  parents: AppParents;
}

/** What a general key is (POST /v1/keys with kind "general"): parsed and consistent with its type. */
export interface GeneralShape {
  usage: KeyUsage;
  scheme: KeyScheme;
  bits?: RsaBits;
  curve?: EccCurve;
}

export interface PurgeOutcome {
  purged: number;
  /** Creations under way for the record that were undone instead of committed. */
  undone: number;
  /** Keys of the record still in the registry afterwards (a failed step; see the log). */
  remaining: number;
}

export interface CreatedKeyInfo {
  entry: KeyEntry;
  pem: string;
}

export interface SignRequest {
  /** The whole message, or its bytes as they arrive. */
  message: Uint8Array | AsyncIterable<Uint8Array>;
  hashAlg: HashName;
  format: SignFormat;
  signal: AbortSignal;
}

export interface SignResult {
  signature: Uint8Array;
  sig: TPMT_SIGNATURE;
  digest: Uint8Array;
  messageLength: number;
}

/** PEM of each key's public area: encoding it (SPKI DER, base64) was most of a GET .../public. */
const PEMS = new WeakMap<TPMT_PUBLIC, string>();

export class KeyManager {
  /** Handles whose creation or deletion is under way here: recovery must not touch them. */
  private readonly inFlight: Set<number>;
  /** Handles a purge is deleting (kept apart: a tenant's own DELETE may hold inFlight). */
  private readonly purging: Set<number>;
  /** Creations and deletions under way, per owner record: a purge waits for them. */
  private readonly underWay = new Map<string, Set<Promise<void>>>();
  /** Creations undone because their owner was removed meanwhile, per owner record. */
  private readonly undone = new Map<string, number>();

  constructor(
    private readonly registry: KeyRegistry,
    private readonly blobs: BlobStore,
    private readonly queue: TpmQueue,
    /** Owns the hash sequences of long messages (context-saved while their bytes trickle in). */
    private readonly sequences: SequenceManager,
    private readonly opts: KeyManagerOptions,
    /** Where the handles being created or deleted here are listed (recovery leaves them alone). */
    private readonly changing: KeysInChange,
    /** Told when a step failed so that the TPM and the registry may disagree until recovery. */
    private readonly maintenance: MaintenanceRequests,
  ) {
    this.inFlight = changing.creatingOrDeleting;
    this.purging = changing.purging;
  }

  /** Whether a create or delete of `handle` is running in this process right now. */
  busy(handle: number): boolean {
    return this.changing.has(handle);
  }

  private needsReconcile(): void {
    this.maintenance.request();
  }

  private ownerAlive(record: string): boolean {
    return this.opts.ownerAlive?.(record) ?? true;
  }

  /** Runs `op` counted as under way for `owner` until it settles. */
  private track<T>(owner: string, op: Promise<T>): Promise<T> {
    const set = this.underWay.get(owner) ?? new Set<Promise<void>>();
    this.underWay.set(owner, set);
    const settled = op.then(
      () => {},
      () => {},
    );
    set.add(settled);
    void settled.then(() => {
      set.delete(settled);
      if (set.size === 0 && this.underWay.get(owner) === set) this.underWay.delete(owner);
    });
    return op;
  }

  /**
   * Runs `fn` inside a queue job of the caller's with the entry's key in the TPM: an AK under
   * the EK, a general key under its app's parent; kept in the object cache when it is on.
   * `key.publicArea` is the key's own (from its blobs). Throws 409 when its blobs are missing.
   */
  withKey<T>(tpm: TpmRunner, entry: KeyEntry, fn: (key: NamedHandle & { publicArea: TPMT_PUBLIC }) => Promise<T>): Promise<T> {
    const material = this.material(entry);
    const blobs = material.blobs;
    if (!blobs) throw conflict(`the key material of ${formatHandle(entry.handle)} is missing on the host`);
    return withEntryKey(tpm, entry, material, (key) => fn({ ...key, publicArea: blobs.publicArea }), this.opts.cache);
  }

  /** What loading the entry's key needs: its blobs and, a general key, its app's parent. */
  material(entry: KeyEntry): KeyMaterial {
    const blobs = this.blobs.get(entry.handle);
    return isGeneral(entry) ? { blobs, parent: this.opts.parents.get(entry.owner) } : { blobs };
  }

  /** Whether the record has an app parent (made on its first general key, destroyed by its purge). */
  hasAppParent(owner: string): boolean {
    return this.opts.parents.get(owner) !== undefined;
  }

  pem(entry: KeyEntry): string | undefined {
    const b = this.blobs.get(entry.handle);
    if (!b) return undefined;
    // Made once per stored public area (a key made again under the handle has a new one).
    let pem = PEMS.get(b.publicArea);
    if (pem === undefined) PEMS.set(b.publicArea, (pem = publicToPem(b.publicArea)));
    return pem;
  }

  blobsOf(entry: KeyEntry): StoredBlobs | undefined {
    return this.blobs.get(entry.handle);
  }

  private checkQuota(tenant: Tenant, draft?: Map<number, KeyEntry>): void {
    const owner = recordOf(tenant);
    const have = draft ? [...draft.values()].filter((e) => e.owner === owner).length : this.registry.ofTenant(tenant).length;
    if (have >= tenant.maxKeys) throw quotaExceeded(`you already have ${have} key(s); your quota is ${tenant.maxKeys}`);
  }

  private async checkFloor(tpm: TpmRunner): Promise<void> {
    const avail = await getTpmProperty(tpm, TPM_PT.HR_PERSISTENT_AVAIL);
    if (avail !== undefined && avail - 1 < this.opts.freeFloor) {
      throw conflict(`the TPM has ${avail} free persistent slot(s) and ${this.opts.freeFloor} must stay free for EVE; no key can be made persistent now`);
    }
  }

  /** An AK (under the EK), or with `general` a general key under the record's app parent. */
  create(tenant: Tenant, type: KeyType, hashAlg: HashName, signal: AbortSignal, general?: GeneralShape): Promise<CreatedKeyInfo> {
    return this.track(recordOf(tenant), this.createNow(tenant, type, hashAlg, signal, general));
  }

  /**
   * The record's app parent, made (one TPM job) and written durably on its first general key,
   * before any key under it exists: a committed key never outlives a parent that was lost.
   */
  private async appParent(tenant: Tenant, owner: string): Promise<KeyBlobs> {
    if (!this.ownerAlive(owner)) throw unauthenticated(`tenant ${tenant.id} was removed; no key is made for it`);
    const had = this.opts.parents.get(owner);
    // Not aborted by one caller's signal: a concurrent creation of the record waits for the same parent.
    const parent = had ?? (await this.opts.parents.ensure(owner, () => this.queue.submit(tenant.id, 'create-parent', (tpm) => createAppParent(tpm))));
    if (!had) crashPoint('create:after-parent');
    return parent;
  }

  private async createNow(tenant: Tenant, type: KeyType, hashAlg: HashName, signal: AbortSignal, general?: GeneralShape): Promise<CreatedKeyInfo> {
    this.checkQuota(tenant);
    const owner = recordOf(tenant);
    const store = this.opts.keyStore;
    const pool = this.opts.pool;
    const parent = general ? await this.appParent(tenant, owner) : undefined;
    const spec = general ? ({ type, ...general, hashAlg: HASH_ALG[hashAlg] } as GeneralKeySpec) : undefined;
    // 1. In the TPM: see which pool handles are occupied, make the key (nothing stays loaded).
    const { key, occupied } = await this.queue.submit(
      tenant.id,
      'create-key',
      async (tpm) => {
        const occupied = new Set(await listHandles(tpm, pool.first, pool.last));
        if (store === 'tpm') await this.checkFloor(tpm);
        const key: CreatedKey = parent && spec ? await withAppParent(tpm, parent, (p) => createGeneralKey(tpm, p, spec)) : await createAk(tpm, type, { hashAlg: HASH_ALG[hashAlg] });
        return { key, occupied };
      },
      { signal },
    );
    crashPoint('create:after-tpm');
    // 2. Intent: the handle is taken, the key not yet usable. From here on the request runs to
    //    its end even if the client leaves, so the outcome does not depend on the client.
    let reserved: number | undefined;
    const entry = await this.registry.update((draft) => {
      if (!this.ownerAlive(owner)) throw unauthenticated(`tenant ${tenant.id} was removed while its key was being made; nothing was kept`);
      this.checkQuota(tenant, draft);
      // A handle with a blob file but no entry belongs to a key of a lost registry (recovery).
      const handle = pool.allocate((h) => draft.has(h) || occupied.has(h) || this.inFlight.has(h) || this.blobs.hasFile(h));
      if (handle === undefined) throw conflict(`the key handle pool ${pool.toString()} is exhausted`);
      // In flight from the moment the entry exists (recovery after an outage must skip it).
      reserved = handle;
      this.inFlight.add(handle);
      const e: KeyEntry = {
        handle,
        owner,
        tenant: tenant.id,
        type,
        hashAlg,
        name: Buffer.from(key.name).toString('hex'),
        createdAt: new Date().toISOString(),
        state: 'pending-create',
        store,
        ...(general ? { kind: 'general' as const, ...general } : {}),
      };
      draft.set(handle, e);
      return e;
    }).catch((e: unknown) => {
      if (reserved !== undefined) this.inFlight.delete(reserved);
      throw e;
    });
    try {
      return await this.finishCreate(tenant, entry, key);
    } finally {
      this.inFlight.delete(entry.handle);
    }
  }

  private async finishCreate(tenant: Tenant, entry: KeyEntry, key: CreatedKey): Promise<CreatedKeyInfo> {
    const store = entry.store;
    crashPoint('create:after-pending');
    try {
      await this.blobs.write(entry.handle, { owner: entry.owner, tenant: entry.tenant }, key);
      crashPoint('create:after-blobs');
      if (store === 'tpm') {
        await this.queue.submit(tenant.id, 'persist-key', async (tpm) => {
          await this.checkFloor(tpm);
          if (isGeneral(entry)) await persistEntryKey(tpm, entry, this.material(entry), entry.handle);
          else await persistKey(tpm, key, entry.handle);
        });
        crashPoint('create:after-persist');
      }
    } catch (e) {
      // The TPM answered (or was never asked): nothing is persistent, roll back now. If the
      // TPM went away mid-command the object may exist: leave it pending for recovery.
      if (store === 'tpm' && isTpmUnreachable(e)) this.needsReconcile();
      else await this.forget(entry.handle).catch(() => this.needsReconcile());
      throw e;
    }
    // The owner is checked in the same serialized update that commits: a purge of it marks
    // its keys in that chain too, so it either sees this key committed (and deletes it) or this
    // update sees the owner gone (and the creation is undone).
    let gone = false;
    let committed: KeyEntry;
    try {
      committed = await this.registry.update((draft) => {
        const e = draft.get(entry.handle)!;
        if (!this.ownerAlive(e.owner)) {
          gone = true;
          throw unauthenticated(`tenant ${tenant.id} was removed while its key was being made; the key was discarded`);
        }
        e.state = 'committed';
        return { ...e };
      });
    } catch (e) {
      if (gone) await this.undoCreate(entry);
      throw e;
    }
    return { entry: committed, pem: publicToPem(key.publicArea) };
  }

  /** Undoes a finished but uncommitted creation; if the TPM is away, recovery finishes it. */
  private async undoCreate(entry: KeyEntry): Promise<void> {
    try {
      if (entry.store === 'tpm') await this.queue.submit(entry.tenant, 'evict-key', (tpm) => evictIfOurs(tpm, entry), { lane: 'cleanup' });
      await this.forget(entry.handle);
      this.undone.set(entry.owner, (this.undone.get(entry.owner) ?? 0) + 1);
    } catch {
      this.needsReconcile();
    }
  }

  /** Removes blob file and registry entry (the last, durable step of a rollback or delete). */
  private async forget(handle: number): Promise<void> {
    await this.blobs.remove(handle);
    await this.registry.update((draft) => void draft.delete(handle));
  }

  remove(tenant: Tenant, entry: KeyEntry): Promise<void> {
    return this.track(recordOf(tenant), this.removeTracked(tenant, entry));
  }

  private async removeTracked(tenant: Tenant, entry: KeyEntry): Promise<void> {
    if (this.inFlight.has(entry.handle) || this.purging.has(entry.handle)) throw conflict(`key ${formatHandle(entry.handle)} is being changed by another request`);
    this.inFlight.add(entry.handle);
    try {
      await this.removeNow(tenant, entry);
    } finally {
      this.inFlight.delete(entry.handle);
    }
  }

  private async removeNow(tenant: Tenant, entry: KeyEntry): Promise<void> {
    await this.registry.update((draft) => {
      const e = draft.get(entry.handle);
      if (!e || e.owner !== recordOf(tenant) || e.state !== 'committed') throw conflict(`key ${formatHandle(entry.handle)} is being changed by another request`);
      e.state = 'pending-delete';
    });
    crashPoint('delete:after-pending');
    await this.finishDelete(entry);
  }

  /** The steps of a delete after its entry is durably pending-delete. */
  private async finishDelete(entry: KeyEntry): Promise<void> {
    await this.uncache(entry);
    if (entry.store === 'tpm') {
      try {
        await this.queue.submit(entry.tenant, 'evict-key', (tpm) => evictIfOurs(tpm, entry));
      } catch (e) {
        this.needsReconcile(); // the delete is recorded; recovery finishes it
        throw e;
      }
      crashPoint('delete:after-evict');
    }
    await this.blobs.remove(entry.handle);
    crashPoint('delete:after-blobs');
    await this.registry.update((draft) => void draft.delete(entry.handle));
  }

  /** A key being deleted leaves the object cache, its loaded object flushed now (a cleanup job). */
  private async uncache(entry: KeyEntry): Promise<void> {
    const cache = this.opts.cache;
    const loaded = cache?.forget(entry.handle);
    if (loaded === undefined) return;
    await this.queue
      .submit(entry.tenant, 'uncache-key', (tpm) => tpm.run(FlushContext, { flushHandle: loaded }), { lane: 'cleanup' })
      .catch(() => this.queue.transients.release(loaded)); // gone already, or the sweep after the outage flushes it
  }

  /** Resolves once no creation or deletion of `owner` is under way. */
  private async settle(owner: string): Promise<void> {
    for (let ops = this.underWay.get(owner); ops?.size; ops = this.underWay.get(owner)) await Promise.all([...ops]);
  }

  /**
   * Deletes every key of `owner`, a record no configured tenant has (the caller checked it, and
   * ownerAlive says so from now on). First waits for the record's creations and deletions under
   * way — a creation then either committed before (and is deleted here) or found its owner gone
   * at its commit and undid itself — then marks its committed keys pending-delete in one
   * registry update and finishes each delete. So the counts returned are what happened.
   */
  async purge(owner: string, onPurged: (e: KeyEntry) => void = () => {}): Promise<PurgeOutcome> {
    const undoneBefore = this.undone.get(owner) ?? 0;
    let purged = 0;
    for (let round = 0; round < 3; round++) {
      await this.settle(owner);
      const marked = await this.registry.update((draft) => {
        const out: KeyEntry[] = [];
        for (const e of draft.values()) {
          // A committed key in flight is a DELETE of its own, counted as under way: next round.
          if (e.owner !== owner || e.state !== 'committed' || this.inFlight.has(e.handle) || this.purging.has(e.handle)) continue;
          e.state = 'pending-delete';
          out.push({ ...e });
        }
        return out;
      });
      for (const e of marked) this.purging.add(e.handle);
      try {
        for (const e of marked) {
          try {
            await this.finishDelete(e);
            purged++;
            onPurged(e);
          } catch {
            this.needsReconcile(); // recorded as pending-delete: recovery finishes it
          }
        }
      } finally {
        for (const e of marked) this.purging.delete(e.handle);
      }
      if (!this.underWay.has(owner) && !this.registry.ofRecord(owner).some((e) => e.state === 'committed')) break;
    }
    const undone = (this.undone.get(owner) ?? 0) - undoneBefore;
    const remaining = this.registry.ofRecord(owner).length;
    // Crypto-erase: with no key of the record left, its app parent goes (and with it any copy of its keys' blobs).
    if (remaining === 0 && !this.underWay.has(owner) && this.hasAppParent(owner)) await this.opts.parents.destroy(owner);
    return { purged, undone, remaining };
  }

  async sign(tenant: Tenant, entry: KeyEntry, req: SignRequest): Promise<SignResult> {
    const general = isGeneral(entry);
    if (general && entry.usage !== 'sign') {
      throw unsupported(`key ${formatHandle(entry.handle)} is a decrypt key (${entry.scheme ?? 'no scheme'}); it cannot sign`);
    }
    if (req.hashAlg !== entry.hashAlg) {
      throw unsupported(`key ${formatHandle(entry.handle)} signs only ${entry.hashAlg} digests (its scheme is fixed), not ${req.hashAlg}`);
    }
    const alg = HASH_ALG[req.hashAlg];
    const material = this.material(entry);
    if (!material.blobs && entry.store === 'blobs') throw conflict(`the key material of ${formatHandle(entry.handle)} is missing on the host`);
    if (general && !material.parent && entry.store === 'blobs') {
      throw conflict(`key ${formatHandle(entry.handle)} cannot be used: its app's parent key is gone (erased when its app was purged)`);
    }

    const signWith = async (tpm: TpmRunner, digest: Uint8Array, validation: TPMT_TK_HASHCHECK): Promise<TPMT_SIGNATURE> => {
      // A DELETE may have started while the message was streaming in.
      if (this.registry.get(entry.handle)?.state !== 'committed') throw conflict(`key ${formatHandle(entry.handle)} is being deleted`);
      // A general key is not restricted: the TPM signs any digest with it, a NULL ticket too.
      if (!general && validation.hierarchy === TPM_RH.NULL) {
        throw unsupported('the message starts with TPM_GENERATED_VALUE (0xFF544347); an attestation key never signs such data');
      }
      return withEntryKey(tpm, entry, material, (key) => signDigest(tpm, key, digest, validation), this.opts.cache);
    };

    const msg = req.message;
    if (msg instanceof Uint8Array && msg.length <= SINGLE_HASH_MAX) {
      // Small: hash and sign in one job.
      return this.queue.submit(
        tenant.id,
        'sign',
        async (tpm) => {
          const h = await tpmHash(tpm, msg, alg);
          const sig = await signWith(tpm, h.digest, h.validation);
          return { sig, digest: h.digest, messageLength: h.length, signature: formatSignature(sig, req.format) };
        },
        { signal: req.signal },
      );
    }
    // Large or streamed: hashed by the sequence manager in bounded jobs; the TPM is never held
    // while the client's next bytes are awaited, and an idle sequence is saved out of it.
    const done = await this.sequences.hash(tenant.id, msg, alg, req.signal);
    const sig = await this.queue.submit(tenant.id, 'sign', (tpm) => signWith(tpm, done.digest, done.validation), {
      signal: req.signal,
    });
    return { sig, digest: done.digest, messageLength: done.length, signature: formatSignature(sig, req.format) };
  }
}

/** Evicts the persistent object at the entry's handle if it is the entry's key; absent is fine. */
export async function evictIfOurs(tpm: TpmRunner, entry: KeyEntry): Promise<'evicted' | 'absent' | 'foreign'> {
  let info: PublicInfo;
  try {
    info = await readPublic(tpm, entry.handle);
  } catch (e) {
    if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) return 'absent';
    throw e;
  }
  if (Buffer.from(info.name).toString('hex') !== entry.name) return 'foreign';
  await evictPersistent(tpm, info); // the handle with its Name
  return 'evicted';
}
