/**
 * Getting a tenant's key into the TPM for one job, the one way sign and attestation share:
 * `blobs` store: loaded from its wrapped blobs under the EK and flushed afterwards; `tpm`
 * store: the persistent object at its handle, used only if its Name is still the key's (never
 * whatever else sits there).
 */
import { readPublic, withLoadedKey, type NamedHandle, type TpmRunner } from '../../tpm/index.js';
import { conflict } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import type { StoredBlobs } from './blob-store.js';
import type { KeyEntry } from './registry.js';

/** Runs `fn` with the entry's key in the TPM (its handle with its Name); nothing of it stays loaded. */
export async function withEntryKey<T>(tpm: TpmRunner, entry: KeyEntry, blobs: StoredBlobs | undefined, fn: (key: NamedHandle) => Promise<T>): Promise<T> {
  if (entry.store === 'tpm') {
    const info = await readPublic(tpm, entry.handle);
    if (Buffer.from(info.name).toString('hex') !== entry.name) throw conflict(`the TPM object at ${formatHandle(entry.handle)} is not this key any more`);
    return fn(info);
  }
  if (!blobs) throw conflict(`the key material of ${formatHandle(entry.handle)} is missing on the host`);
  return withLoadedKey(tpm, blobs, (_h, key) => fn(key));
}
