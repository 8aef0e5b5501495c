/**
 * What every attestation job on a tenant's key needs: the key still committed when the job
 * runs (a DELETE may have started since the request was authorized), and its blobs.
 */
import { conflict } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import type { KeyBlobs } from '../../tpm/index.js';
import type { StoredBlobs } from '../keys/blob-store.js';
import type { KeyEntry, KeyRegistry } from '../keys/registry.js';

/** A tenant's key as a job uses it. */
export interface JobKey {
  entry: KeyEntry;
  blobs: StoredBlobs | undefined;
  /** A general key's app parent (keys/key-in-tpm.ts). */
  parent?: KeyBlobs | undefined;
}

export function stillCommitted(registry: KeyRegistry, entry: KeyEntry): void {
  if (registry.get(entry.handle)?.state !== 'committed') throw conflict(`key ${formatHandle(entry.handle)} is being deleted`);
}

/** The size of a digest of the key's name hash: the Name is nameAlg (2 octets) ‖ digest. */
export function nameDigestSize(entry: KeyEntry): number {
  return entry.name.length / 2 - 2;
}

/**
 * A failure while `entry` was being brought into the TPM or used: with two keys in one job
 * (certify), which key a failure says is lost must not be guessed. The innermost blame wins.
 */
export class KeyStepError extends Error {
  override readonly name = 'KeyStepError';
  constructor(
    readonly entry: KeyEntry,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

export async function blame<T>(entry: KeyEntry, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw e instanceof KeyStepError ? e : new KeyStepError(entry, e);
  }
}
