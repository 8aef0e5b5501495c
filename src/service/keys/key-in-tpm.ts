/**
 * Getting a tenant's key into the TPM for one job, the one way sign and attestation share:
 * `blobs` store: loaded from its wrapped blobs under the EK and flushed afterwards, or, given
 * the object cache, kept loaded (or saved) for the next use; `tpm` store: the persistent object
 * at its handle, used only if its Name is still the key's (never whatever else sits there),
 * read once per cache lifetime when a cache is given.
 */
import { readPublic, withLoadedKey, type NamedHandle, type TpmRunner } from '../../tpm/index.js';
import { conflict } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import { handleGone, type ObjectCache } from '../tpm/object-cache.js';
import type { StoredBlobs } from './blob-store.js';
import type { KeyEntry } from './registry.js';

/** Runs `fn` with the entry's key in the TPM (its handle with its Name); without `cache` nothing of it stays loaded. */
export async function withEntryKey<T>(
  tpm: TpmRunner,
  entry: KeyEntry,
  blobs: StoredBlobs | undefined,
  fn: (key: NamedHandle) => Promise<T>,
  cache?: ObjectCache,
): Promise<T> {
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
  if (!blobs) throw conflict(`the key material of ${formatHandle(entry.handle)} is missing on the host`);
  if (cache?.enabled) return cache.withKey(tpm, entry, blobs, fn);
  return withLoadedKey(tpm, blobs, (_h, key) => fn(key));
}
