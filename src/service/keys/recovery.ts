/**
 * Start-up recovery: brings registry, blob files and TPM back into agreement after a crash at
 * any instant. Each state resolves one way only:
 *
 * - pending-create: the client never got its 201 → roll back (evict the object if it is there
 *   and is this key, remove blobs and entry);
 * - pending-delete: the delete was asked for → finish it (same steps);
 * - committed, tpm store, object missing → re-persist from the blobs (or report if none);
 * - a blob file (readable or not) or, tpm mode, an object in the pool that no entry owns →
 *   reported and kept, its handle never allocated. Create writes its entry before the blob
 *   file and the object, and delete removes them before the entry, so only a lost registry
 *   leaves such things — and they are keys to give back (`registry rebuild`), not garbage.
 *   Recovery deletes only what the registry's own pending entries prove uncommitted;
 * - registry.json missing while blob files exist → refuse to start (refuseLostRegistry).
 *
 * The file steps need no TPM and run before the listeners open; the TPM steps run as the first
 * queue job and again whenever the TPM comes back.
 */
import type { Logger } from 'pino';
import {
  TpmError,
  TPM_RC,
  GENERAL_DECRYPT_ATTRIBUTES,
  GENERAL_SIGN_ATTRIBUTES,
  akTemplate,
  flush,
  listHandles,
  matchesTemplate,
  persistKey,
  readPublic,
  type TpmRunner,
  type TPMT_PUBLIC,
} from '../../tpm/index.js';
import type { BlobFileProblem, BlobStore } from './blob-store.js';
import { removeStaleTempFiles } from '../admin/durable-file.js';
import { formatHandle, isReservedHandle } from '../protocol/handles.js';
import type { KeyHealth } from './key-health.js';
import type { KeysInChange } from './in-change.js';
import { evictIfOurs } from './keys.js';
import { HASH_ALG } from '../protocol/params.js';
import type { HandlePool } from './pool.js';
import { isGeneral, RegistryMissingError, type KeyEntry, type KeyRegistry, type KeyStoreKind } from './registry.js';
import type { AppParents } from './app-parents.js';
import { persistEntryKey } from './key-in-tpm.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const REBUILD_COMMAND = 'eve-tpm-service registry rebuild --state-dir DIR [--key-store tpm]';

/**
 * registry.json absent while blob files exist: the registry was lost (create writes it before
 * any blob file). Starting would serve empty lists and hand the keys' handles to new keys, so
 * start-up stops here with the command that brings the keys back.
 */
export function refuseLostRegistry(stateDir: string, blobHandles: readonly number[], keyStore: KeyStoreKind): void {
  const path = join(stateDir, 'registry.json');
  const n = blobHandles.length;
  if (n === 0 || existsSync(path)) return;
  const names = [...blobHandles].sort((a, b) => a - b).map((h) => `${formatHandle(h)}.json`);
  const shown = names.slice(0, 3).join(', ') + (n > 3 ? `, … (${n} in all)` : '');
  throw new RegistryMissingError(
    `the key registry ${path} is missing but ${join(stateDir, 'keys')} holds ${n} key blob file(s) (${shown}); refusing to start, so that no key is lost. ` +
      `With the service stopped, rebuild the registry from them: eve-tpm-service registry rebuild --state-dir ${stateDir}${keyStore === 'tpm' ? ' --key-store tpm' : ''}`,
  );
}

/** File-only recovery: blobs-store pending entries, orphan and stale files. */
export async function recoverFiles(
  stateDir: string,
  registry: KeyRegistry,
  blobs: BlobStore,
  badFiles: readonly BlobFileProblem[],
  log: Logger,
  parents?: AppParents,
): Promise<void> {
  // loadAllSync first: it makes the parents directory (absent before the first general key).
  const badParents = parents?.loadAllSync() ?? [];
  for (const dir of [stateDir, blobs.dir, ...(parents ? [parents.dir] : [])]) {
    for (const f of await removeStaleTempFiles(dir)) log.info({ event: 'recovery', file: f }, 'removed a temp file left by a crash');
  }
  for (const p of badParents) {
    log.error({ event: 'recovery', file: p.file, problem: p.problem }, "an app parent's file is unreadable; the general keys of its record cannot be used; kept for the operator to examine");
  }
  for (const e of registry.all()) {
    if (e.store !== 'blobs' || e.state === 'committed') continue;
    await blobs.remove(e.handle);
    await registry.update((d) => void d.delete(e.handle));
    log.warn(
      { event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant, state: e.state },
      e.state === 'pending-create' ? 'rolled back an unfinished key creation' : 'finished an interrupted key deletion',
    );
  }
  for (const h of blobs.handles()) {
    if (registry.get(h)) continue;
    const b = blobs.get(h)!;
    log.error(
      { event: 'recovery', handle: formatHandle(h), owner: b.owner, tenant: b.tenant },
      `a key's blob file has no registry entry (was the registry restored from an old copy?); kept, its handle is never reused. Restore it with the service stopped: ${REBUILD_COMMAND}`,
    );
  }
  for (const p of badFiles) {
    const handleText = p.file.slice(0, -'.json'.length);
    const owner = registry.all().find((e) => formatHandle(e.handle) === handleText);
    if (owner) {
      log.error({ event: 'recovery', file: p.file, handle: handleText, tenant: owner.tenant, problem: p.problem }, 'the blob file of a registered key is unreadable; the key cannot be used');
    } else {
      log.error({ event: 'recovery', file: p.file, problem: p.problem }, 'an unreadable blob file has no registry entry; kept for the operator to examine, its handle is never reused');
    }
  }
  for (const e of registry.all()) {
    if (e.state === 'committed' && e.store === 'blobs' && !blobs.get(e.handle)) {
      log.error({ event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant }, 'a registered key has no blobs; it cannot be used');
    }
    if (e.state === 'committed' && parents && isGeneral(e) && !parents.get(e.owner)) {
      log.error({ event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant, owner: e.owner }, "a registered general key's app parent is gone; it cannot be loaded");
    }
  }
}

function looksLikeOurKey(pub: TPMT_PUBLIC): boolean {
  for (const type of ['rsa', 'ecc'] as const) {
    for (const alg of Object.values(HASH_ALG)) if (matchesTemplate(pub, akTemplate(type, alg))) return true;
  }
  // A general key (issue 12): exactly the attributes the service gives them.
  return pub.objectAttributes === GENERAL_SIGN_ATTRIBUTES || pub.objectAttributes === GENERAL_DECRYPT_ATTRIBUTES;
}

async function nameAt(tpm: TpmRunner, handle: number): Promise<string | undefined> {
  try {
    return Buffer.from((await readPublic(tpm, handle)).name).toString('hex');
  } catch (e) {
    if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) return undefined;
    throw e;
  }
}

/** TPM recovery; run inside a queue job. Returns handles of committed keys found unusable. */
export async function reconcileTpm(
  tpm: TpmRunner,
  registry: KeyRegistry,
  blobs: BlobStore,
  opts: { keyStore: KeyStoreKind; pool: HandlePool; changing?: KeysInChange; keyHealth?: KeyHealth; parents?: AppParents },
  log: Logger,
): Promise<void> {
  const busy = (h: number): boolean => opts.changing?.has(h) ?? false;
  const resolvePending = async (e: KeyEntry): Promise<void> => {
    const outcome = await evictIfOurs(tpm, e);
    if (outcome === 'foreign') log.error({ event: 'recovery', handle: formatHandle(e.handle) }, 'a different object sits at the handle of an unfinished key; left alone');
    await blobs.remove(e.handle);
    await registry.update((d) => void d.delete(e.handle));
    log.warn(
      { event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant, state: e.state, tpm: outcome },
      e.state === 'pending-create' ? 'rolled back an unfinished key creation' : 'finished an interrupted key deletion',
    );
  };

  for (const e of registry.all()) {
    // A create or delete running right now (recovery after an outage) is left to finish.
    if (e.store !== 'tpm' || busy(e.handle)) continue;
    if (e.state !== 'committed') {
      await resolvePending(e);
      continue;
    }
    if (opts.keyHealth?.isLost(e)) continue; // already reported; retrying cannot help
    const name = await nameAt(tpm, e.handle);
    if (name === e.name) continue;
    const b = blobs.get(e.handle);
    const parent = isGeneral(e) ? opts.parents?.get(e.owner) : undefined;
    if (name === undefined && b && isGeneral(e) && !parent) {
      opts.keyHealth?.markLost(e, { permanent: true, reason: "its persistent object is missing from the TPM and its app's parent key is gone (erased)" });
      log.error({ event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant }, "a committed general key is missing from the TPM and its app's parent is gone to re-create it");
      continue;
    }
    if (name === undefined && b) {
      try {
        if (isGeneral(e)) await persistEntryKey(tpm, e, { blobs: b, parent }, e.handle);
        else await persistKey(tpm, b, e.handle);
      } catch (err) {
        // Blobs the TPM refuses for good (TPM cleared, file damaged) must not stall every other key.
        if (!opts.keyHealth?.restoreFailed(e, err)) throw err;
        continue;
      }
      log.warn({ event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant }, 're-persisted a committed key that was missing from the TPM');
    } else {
      if (name === undefined) opts.keyHealth?.markLost(e, { permanent: true, reason: 'its persistent object is missing from the TPM and its blobs are missing or unreadable on the host' });
      log.error(
        { event: 'recovery', handle: formatHandle(e.handle), tenant: e.tenant, found: name ?? null },
        name === undefined ? 'a committed key is missing from the TPM and has no blobs to re-create it' : 'a different object sits at the handle of a committed key',
      );
    }
  }

  if (opts.keyStore !== 'tpm') return;
  for (const h of await listHandles(tpm, opts.pool.first, opts.pool.last)) {
    if (isReservedHandle(h) || registry.get(h) || busy(h)) continue;
    let pub: TPMT_PUBLIC;
    try {
      pub = (await readPublic(tpm, h)).publicArea;
    } catch (e) {
      if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) continue;
      throw e;
    }
    if (looksLikeOurKey(pub)) {
      // Ours from a lost registry, or restored from an old copy: a key someone may still need.
      log.error(
        { event: 'recovery', handle: formatHandle(h), hasBlobs: blobs.hasFile(h) },
        `a key of this service in the pool has no registry entry; kept, its handle is never reused${blobs.hasFile(h) ? `; restore it with the service stopped: ${REBUILD_COMMAND}` : ''}`,
      );
    } else {
      log.warn({ event: 'recovery', handle: formatHandle(h) }, 'a foreign object occupies a pool handle; left alone and never allocated');
    }
  }
}

/** Flushes transient objects and sessions left loaded (a TPM without a resource manager keeps them). */
export async function flushLeftovers(tpm: TpmRunner, keep: ReadonlySet<number>, log: Logger): Promise<number> {
  let n = 0;
  for (const [first, last] of [
    [0x80000000, 0x80ffffff],
    [0x02000000, 0x03ffffff],
  ] as const) {
    for (const h of await listHandles(tpm, first, last)) {
      if (keep.has(h)) continue;
      try {
        await flush(tpm, h);
        n++;
      } catch (e) {
        log.warn({ event: 'tpm-cleanup', handle: formatHandle(h), err: (e as Error).message }, 'could not flush a leftover handle');
      }
    }
  }
  if (n > 0) log.warn({ event: 'tpm-cleanup', flushed: n }, 'flushed transient objects/sessions left loaded in the TPM');
  return n;
}
