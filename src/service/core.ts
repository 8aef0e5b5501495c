/**
 * The service's state and TPM machinery without any listener: state directory (locked),
 * registry and blobs (file recovery done), the TPM queue and the key manager. The server and
 * the offline admin commands both stand on it.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { openTransport, Tpm } from '../tpm/index.js';
import { BlobStore } from './keys/blob-store.js';
import { AppParents, PARENTS_DIR } from './keys/app-parents.js';
import type { ServiceConfig } from './config.js';
import { crashAfterTpmCommandHook } from './tpm/crash-points.js';
import { KeyHealth } from './keys/key-health.js';
import { KeyManager } from './keys/keys.js';
import { lockStateDir } from './admin/lock.js';
import { HandlePool } from './keys/pool.js';
import { KeysInChange } from './keys/in-change.js';
import { MaintenanceRequests } from './tpm/maintenance.js';
import { TpmQueue, type JobEvent } from './tpm/queue.js';
import { ObjectCache } from './tpm/object-cache.js';
import { isTpmUnreachable } from './tpm/error-mapping.js';
import { reconcileTpm, recoverFiles, refuseLostRegistry } from './keys/recovery.js';
import { KeyRegistry } from './keys/registry.js';
import { SequenceManager } from './tpm/sequences.js';
import { TpmSupervisor } from './tpm/tpm-supervisor.js';

export const REGISTRY_FILE = 'registry.json';
export const KEYS_DIR = 'keys';

export interface Core {
  registry: KeyRegistry;
  blobs: BlobStore;
  /** The apps' storage parents of general keys (issue 12). */
  parents: AppParents;
  pool: HandlePool;
  tpm: Tpm;
  queue: TpmQueue;
  keys: KeyManager;
  /** Streamed hash sequences (loaded or context-saved). */
  sequences: SequenceManager;
  /** Hot keys kept loaded or context-saved across jobs. */
  objectCache: ObjectCache;
  supervisor: TpmSupervisor;
  /** Keys found unusable (TPM cleared, key file damaged): answered honestly, skipped by recovery. */
  keyHealth: KeyHealth;
  /** Stops the supervisor, closes the TPM transport (if this core opened it), releases the lock. */
  close(): Promise<void>;
}

export type CoreConfig = Pick<
  ServiceConfig,
  'tpm' | 'stateDir' | 'poolStart' | 'poolSize' | 'keyStore' | 'tpmFreeFloor' | 'queueCapacity' | 'queuePerTenant' | 'hashSlots' | 'objectCache' | 'maxSequences' | 'sequencesPerTenant' | 'tpmCommandTimeoutMs'
>;

export interface CoreHooks {
  /** Whether a tenant record is configured (the running service; offline: always). */
  ownerAlive?: (record: string) => boolean;
}

export async function openCore(config: CoreConfig, log: Logger, givenTpm?: Tpm, hooks: CoreHooks = {}): Promise<Core> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const unlock = await lockStateDir(config.stateDir);
  try {
    const registry = KeyRegistry.loadSync(join(config.stateDir, REGISTRY_FILE));
    const blobs = new BlobStore(join(config.stateDir, KEYS_DIR));
    const badFiles = blobs.loadAllSync();
    refuseLostRegistry(config.stateDir, blobs.fileHandles(), config.keyStore);
    const parents = new AppParents(join(config.stateDir, PARENTS_DIR));
    await recoverFiles(config.stateDir, registry, blobs, badFiles, log, parents);
    const pool = new HandlePool(config.poolStart, config.poolSize);
    const tpm = givenTpm ?? new Tpm(openTransport(config.tpm, { timeoutMs: config.tpmCommandTimeoutMs }), { onExchange: crashAfterTpmCommandHook });
    const queue = new TpmQueue(tpm, { capacity: config.queueCapacity, perTenant: config.queuePerTenant });
    // The links between the parts, made first: who asks for maintenance (keys, key health,
    // sequences) and who does it (the supervisor); which keys are being changed (the key
    // manager) and who must leave them alone (recovery). No part needs another to exist first.
    const maintenance = new MaintenanceRequests();
    const changing = new KeysInChange();
    const keyHealth = new KeyHealth(log, maintenance);
    const sequences = new SequenceManager(queue, {
      hashSlots: config.hashSlots,
      maxSequences: config.maxSequences,
      sequencesPerTenant: config.sequencesPerTenant,
      onLeak: () => maintenance.request(),
    });
    // Under the kernel's resource manager the service's fd has a space of its own (3 objects).
    const objectCache = new ObjectCache(queue.transients, { size: config.objectCache, kernelSpace: /tpmrm/.test(config.tpm) });
    queue.events.on('done', (ev: JobEvent & { error?: unknown }) => {
      if (ev.error !== undefined && isTpmUnreachable(ev.error)) objectCache.lost();
    });
    const keys = new KeyManager(
      registry,
      blobs,
      queue,
      sequences,
      { keyStore: config.keyStore, pool, freeFloor: config.tpmFreeFloor, ownerAlive: hooks.ownerAlive, cache: objectCache, parents },
      changing,
      maintenance,
    );
    const supervisor = new TpmSupervisor(
      queue,
      maintenance,
      (t) => reconcileTpm(t, registry, blobs, { keyStore: config.keyStore, pool, changing, keyHealth, parents }, log),
      log,
    );
    return {
      registry,
      blobs,
      parents,
      pool,
      tpm,
      queue,
      keys,
      sequences,
      objectCache,
      supervisor,
      keyHealth,
      async close() {
        supervisor.stop();
        // Cached keys are flushed on the way out: the next process starts with nothing of ours loaded.
        if (objectCache.loadedKeys().length > 0) {
          await queue.submit('#service', 'cache-flush', (t) => objectCache.clear(t), { lane: 'cleanup' }).catch(() => {});
        }
        if (!givenTpm) await tpm.transport.close();
        await unlock();
      },
    };
  } catch (e) {
    await unlock();
    throw e;
  }
}
