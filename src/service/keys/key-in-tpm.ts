/**
 * Getting a tenant's key into the TPM for one job, the one way sign and attestation share:
 * `blobs` store: loaded from its wrapped blobs — an AK under the EK, a general key under its
 * app's parent (parent loaded, key loaded, parent flushed: at most two objects at once) — and
 * flushed afterwards, or, given the object cache, kept loaded (or saved) for the next use;
 * `tpm` store: the persistent object at its handle, used only if its Name is still the key's
 * (never whatever else sits there), read once per cache lifetime when a cache is given.
 */
import { flush, generalKeyFromBlobs, loadGeneralKey, loadKey, makePersistent, readPublic, withAppParent, type KeyBlobs, type NamedHandle, type TpmRunner } from '../../tpm/index.js';
import { conflict } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import { handleGone, type ObjectCache } from '../tpm/object-cache.js';
import type { StoredBlobs } from './blob-store.js';
import { isGeneral, type KeyEntry } from './registry.js';

/** What loading a key needs: its blobs and, for a general key, its app's parent blobs. */
export interface KeyMaterial {
  blobs: StoredBlobs | undefined;
  /** A general key's app parent (absent: erased, or never made). */
  parent?: KeyBlobs | undefined;
}

/** Loads the entry's key from its blobs (TPM2_Load); the caller flushes the handle. */
export async function loadEntryKey(tpm: TpmRunner, entry: KeyEntry, material: KeyMaterial): Promise<NamedHandle> {
  const blobs = material.blobs;
  if (!blobs) throw conflict(`the key material of ${formatHandle(entry.handle)} is missing on the host`);
  if (!isGeneral(entry)) return loadKey(tpm, blobs);
  const parent = material.parent;
  if (!parent) throw conflict(`key ${formatHandle(entry.handle)} cannot be used: its app's parent key is gone (erased when its app was purged)`);
  const key = generalKeyFromBlobs(blobs);
  const loaded = await withAppParent(tpm, parent, (p) => loadGeneralKey(tpm, p, key));
  return { handle: loaded.handle, name: loaded.name };
}

/** Runs `fn` with the entry's key in the TPM (its handle with its Name); without `cache` nothing of it stays loaded. */
export async function withEntryKey<T>(tpm: TpmRunner, entry: KeyEntry, material: KeyMaterial, fn: (key: NamedHandle) => Promise<T>, cache?: ObjectCache): Promise<T> {
  if (entry.store === 'tpm') {
    if (cache?.trusts(entry)) {
      try {
        return await fn({ handle: entry.handle, name: Buffer.from(entry.name, 'hex') });
      } catch (e) {
        if (!handleGone(e)) throw e;
        cache.distrust(entry.handle); // evicted behind our back: read it again below
      }
    }
    const info = await readPublic(tpm, entry.handle);
    if (Buffer.from(info.name).toString('hex') !== entry.name) throw conflict(`the TPM object at ${formatHandle(entry.handle)} is not this key any more`);
    cache?.trust(entry);
    return fn(info);
  }
  if (!material.blobs) throw conflict(`the key material of ${formatHandle(entry.handle)} is missing on the host`);
  if (cache?.enabled) return cache.withKey(tpm, entry, () => loadEntryKey(tpm, entry, material), fn);
  const key = await loadEntryKey(tpm, entry, material);
  try {
    return await fn(key);
  } finally {
    await flush(tpm, key.handle).catch(() => {});
  }
}

/** Loads the entry's key from its blobs and makes it persistent at `handle` (EvictControl); nothing stays loaded. */
export async function persistEntryKey(tpm: TpmRunner, entry: KeyEntry, material: KeyMaterial, handle: number): Promise<void> {
  const key = await loadEntryKey(tpm, entry, material);
  try {
    await makePersistent(tpm, key, handle);
  } finally {
    await flush(tpm, key.handle).catch(() => {});
  }
}
