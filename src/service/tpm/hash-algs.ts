/**
 * The hash algorithms of the vocabulary that this TPM implements (TPM2_GetCapability
 * TPM_CAP_ALGS, Part 3 §30.2), for GET /v1/capabilities. Read by the first capabilities request
 * that finds the TPM reachable, then kept: the set is fixed by the TPM's firmware. While the TPM
 * cannot be asked, the vocabulary's list is answered, and the answer says so.
 */
import { GetCapability, TPM_CAP, type TpmRunner } from '../../tpm/index.js';
import type { HashName } from '../protocol/params.js';
import { HASH_ALG } from '../protocol/vocabulary.js';
import type { TpmQueue } from './queue.js';

export interface HashAlgsAnswer {
  hashAlgs: HashName[];
  /** tpm: what this TPM implements; vocabulary: every hash the API knows (the TPM not asked yet). */
  hashAlgsFrom: 'tpm' | 'vocabulary';
}

const VOCABULARY = Object.keys(HASH_ALG) as HashName[];
/** The highest algorithm ID the vocabulary needs: the listing stops past it. */
const LAST = Math.max(...Object.values(HASH_ALG));

/** The vocabulary's hashes the TPM lists, in the vocabulary's order. */
export async function implementedHashes(tpm: TpmRunner): Promise<HashName[]> {
  const have = new Set<number>();
  let from = Math.min(...Object.values(HASH_ALG));
  for (;;) {
    const r = await tpm.run(GetCapability, { capability: TPM_CAP.ALGS, property: from, propertyCount: 64 });
    const d = r.capabilityData;
    if (d.capability !== TPM_CAP.ALGS) throw new Error('the TPM answered TPM_CAP_ALGS with another capability');
    for (const p of d.data) have.add(p.alg);
    const last = d.data.at(-1)?.alg;
    // More to list only while the TPM says so and it has not passed the vocabulary's last hash.
    if (!r.moreData || last === undefined || last >= LAST) break;
    from = last + 1;
  }
  const out = VOCABULARY.filter((h) => have.has(HASH_ALG[h]));
  // Every TPM 2.0 implements a hash of the API (SHA-256 at least): none listed is a bad answer.
  if (out.length === 0) throw new Error('the TPM listed none of the API\'s hash algorithms in TPM_CAP_ALGS');
  return out;
}

export class TpmHashAlgs {
  private known: HashName[] | undefined;
  private reading: Promise<HashName[]> | undefined;

  constructor(
    private readonly queue: TpmQueue,
    /** The supervisor's view: false while the TPM is known to be away (no job is queued then). */
    private readonly reachable: () => boolean | undefined,
  ) {}

  /** The list, asking the TPM once (as one job of `tenant`'s) if it has not answered yet. */
  async list(tenant: string): Promise<HashAlgsAnswer> {
    if (this.known) return { hashAlgs: [...this.known], hashAlgsFrom: 'tpm' };
    if (this.reachable() === false) return { hashAlgs: [...VOCABULARY], hashAlgsFrom: 'vocabulary' };
    this.reading ??= this.queue.submit(tenant, 'capabilities', implementedHashes).finally(() => (this.reading = undefined));
    try {
      this.known = await this.reading;
      return { hashAlgs: [...this.known], hashAlgsFrom: 'tpm' };
    } catch {
      // TPM away or queue full: the vocabulary now, the TPM asked again by a later request.
      return { hashAlgs: [...VOCABULARY], hashAlgsFrom: 'vocabulary' };
    }
  }
}
