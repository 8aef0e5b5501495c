/**
 * `registry rebuild`: gives back the keys of a lost (or restored-from-an-old-copy) registry.
 * Every blob file holds what a committed entry needs — handle, owner record and name, and the
 * key's public area, from which type, hash and TPM Name follow — so each blob file without an
 * entry becomes a committed entry again; only its creation instant is approximated by the
 * file's modification time. Runs with the service stopped (it takes the state lock); entries
 * already in the registry are never changed, unreadable files are reported and left alone.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { akTemplate, matchesTemplate, objectName, type TPMT_PUBLIC } from '../../tpm/index.js';
import { BlobStore, type BlobFileProblem } from './blob-store.js';
import { KEYS_DIR, REGISTRY_FILE } from '../core.js';
import { formatHandle } from '../protocol/handles.js';
import { lockStateDir } from '../admin/lock.js';
import { HASH_ALG, type HashName, type KeyType } from '../protocol/params.js';
import { KeyRegistry, RegistryFormatError, type KeyEntry, type KeyStoreKind } from './registry.js';

export class RebuildError extends Error {
  override readonly name = 'RebuildError';
}

/** The AK template a public area was made from, if it is one this service makes. */
export function akShape(pub: TPMT_PUBLIC): { type: KeyType; hashAlg: HashName } | undefined {
  for (const type of ['rsa', 'ecc'] as const) {
    for (const [hashAlg, alg] of Object.entries(HASH_ALG) as Array<[HashName, number]>) {
      if (matchesTemplate(pub, akTemplate(type, alg))) return { type, hashAlg };
    }
  }
  return undefined;
}

export interface RebuildReport {
  restored: KeyEntry[];
  /** Entries that were already in the registry. */
  kept: number;
  /** Blob files without entry that could not be restored (left in place). */
  skipped: BlobFileProblem[];
}

/** Re-creates the committed entries of blob files that have none. `keyStore`: the service's. */
export async function rebuildRegistry(stateDir: string, keyStore: KeyStoreKind): Promise<RebuildReport> {
  if (!existsSync(stateDir)) throw new RebuildError(`no state directory ${stateDir}`);
  const release = await lockStateDir(stateDir);
  try {
    const path = join(stateDir, REGISTRY_FILE);
    let registry: KeyRegistry;
    try {
      registry = KeyRegistry.loadSync(path);
    } catch (e) {
      if (!(e instanceof RegistryFormatError)) throw e;
      throw new RebuildError(`${e.message}; move it aside (mv ${path} ${path}.broken) and run registry rebuild again`);
    }
    const blobs = new BlobStore(join(stateDir, KEYS_DIR));
    const problems = blobs.loadAllSync();
    const skipped = problems.filter((p) => !registry.all().some((e) => `${formatHandle(e.handle)}.json` === p.file));
    const restored: KeyEntry[] = [];
    for (const handle of blobs.handles().sort((a, b) => a - b)) {
      if (registry.get(handle)) continue;
      const b = blobs.get(handle)!;
      const shape = akShape(b.publicArea);
      if (!shape) {
        skipped.push({ file: `${formatHandle(handle)}.json`, problem: 'not an attestation key this service makes' });
        continue;
      }
      const { mtime } = await fsp.stat(blobs.fileOf(handle));
      restored.push({
        handle,
        owner: b.owner,
        tenant: b.tenant,
        ...shape,
        name: Buffer.from(objectName(b.publicArea)).toString('hex'),
        createdAt: mtime.toISOString(),
        state: 'committed',
        store: keyStore,
      });
    }
    const kept = registry.all().length;
    // Written even when nothing was restored: an empty registry lets the service start.
    await registry.update((draft) => {
      for (const e of restored) draft.set(e.handle, e);
    });
    return { restored, kept, skipped };
  } finally {
    await release();
  }
}
