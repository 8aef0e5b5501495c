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
import { KeyUsageError, TPM_ALG, TPM_ECC, akTemplate, generalKeyFromBlobs, generalKeyTemplate, matchesTemplate, objectName, type KeyBlobs, type TPMT_PUBLIC } from '../../tpm/index.js';
import { BlobStore, type BlobFileProblem } from './blob-store.js';
import { KEYS_DIR, REGISTRY_FILE } from '../core.js';
import { formatHandle } from '../protocol/handles.js';
import { lockStateDir } from '../admin/lock.js';
import { HASH_ALG, hashName, type HashName, type KeyType } from '../protocol/params.js';
import type { EccCurve, KeyScheme, RsaBits } from '../protocol/vocabulary.js';
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

const SCHEMES: Readonly<Record<number, KeyScheme>> = { [TPM_ALG.RSASSA]: 'rsassa', [TPM_ALG.RSAPSS]: 'rsapss', [TPM_ALG.ECDSA]: 'ecdsa', [TPM_ALG.OAEP]: 'oaep', [TPM_ALG.ECDH]: 'ecdh' };
const CURVES: Readonly<Record<number, EccCurve>> = { [TPM_ECC.NIST_P256]: 'P-256', [TPM_ECC.NIST_P384]: 'P-384' };

type GeneralEntryShape = Pick<KeyEntry, 'type' | 'hashAlg' | 'kind' | 'usage' | 'scheme' | 'bits' | 'curve'>;

/**
 * A general key's entry fields, read from its blobs (usage from its attributes, scheme, hash and
 * size from its parameters), if it is exactly a key this service makes (its template again).
 */
export function generalShape(blobs: KeyBlobs): GeneralEntryShape | undefined {
  let key;
  try {
    key = generalKeyFromBlobs(blobs);
  } catch (e) {
    if (e instanceof KeyUsageError) return undefined;
    throw e;
  }
  const pub = key.publicArea;
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) return undefined;
  const scheme = SCHEMES[pub.parameters.scheme.scheme];
  const alg = pub.parameters.scheme.details?.hashAlg;
  const hash = alg === undefined ? undefined : hashName(alg);
  if (scheme === undefined || hash === undefined) return undefined;
  let shape: GeneralEntryShape;
  if (pub.type === TPM_ALG.RSA) {
    shape = { type: 'rsa', hashAlg: hash, kind: 'general', usage: key.usage, scheme, bits: pub.parameters.keyBits as RsaBits };
  } else {
    const curve = CURVES[pub.parameters.curveID];
    if (curve === undefined) return undefined;
    shape = { type: 'ecc', hashAlg: hash, kind: 'general', usage: key.usage, scheme, curve };
  }
  try {
    const again = generalKeyTemplate({ type: shape.type, usage: shape.usage, scheme: shape.scheme, bits: shape.bits, curve: shape.curve, hashAlg: alg } as Parameters<typeof generalKeyTemplate>[0]);
    return matchesTemplate(pub, again) ? shape : undefined;
  } catch {
    return undefined; // a size or scheme this service never makes
  }
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
      const shape = akShape(b.publicArea) ?? generalShape(b);
      if (!shape) {
        skipped.push({ file: `${formatHandle(handle)}.json`, problem: 'not a key this service makes' });
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
