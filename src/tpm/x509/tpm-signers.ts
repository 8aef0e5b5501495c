/**
 * X.509 signers backed by a key loaded in the TPM:
 * - a general signing key: the bytes are hashed here and signed with a NULL ticket;
 * - an AK (restricted): the TPM hashes the bytes itself (TPM2_Hash, or a sequence) and signs
 *   with the HASHCHECK ticket; a CSR's or certificate's TBS is a DER SEQUENCE (first octet
 *   0x30), so it never starts with TPM_GENERATED_VALUE and the TPM always gives a ticket.
 */
import { createHash } from 'node:crypto';
import { NODE_HASH, TPMA_OBJECT } from '../constants.js';
import type { NamedHandle } from '../command.js';
import type { TPMT_PUBLIC } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { assertKeyUsage, type LoadedKey } from '../ops/general-keys.js';
import { signDigestWithKey } from '../ops/general-sign.js';
import { signMessage } from '../ops/sign.js';
import { createSigner, SignerError, type TpmSigner } from './signer.js';

/** A loaded AK: its handle with its Name and public area. A general key (which has a usage) is not one. */
export interface LoadedAk extends NamedHandle {
  readonly publicArea: TPMT_PUBLIC;
  readonly usage?: never;
}

/** A signer with a loaded general signing key; it must stay loaded while the signer is used. */
export function signerForKey(tpm: TpmRunner, key: LoadedKey<'sign'>, opts: RunOptions = {}): Promise<TpmSigner> {
  assertKeyUsage(key, 'sign');
  return createSigner(key.publicArea, async ({ data, hashAlg }) => {
    const name = NODE_HASH[hashAlg];
    if (!name) throw new SignerError(`hash 0x${hashAlg.toString(16)} is not available here`);
    const digest = new Uint8Array(createHash(name).update(data).digest());
    return signDigestWithKey(tpm, key, digest, { ...opts, hashAlg });
  });
}

/** A signer with a loaded AK (restricted signing key): TPM-computed digest and ticket. */
export function signerForAk(tpm: TpmRunner, ak: LoadedAk, opts: RunOptions = {}): Promise<TpmSigner> {
  const a = ak.publicArea.objectAttributes;
  if ((a & TPMA_OBJECT.restricted) === 0 || (a & TPMA_OBJECT.sign) === 0) throw new SignerError('signerForAk takes a restricted signing key (an AK); use signerForKey for a general key');
  const key: NamedHandle = { handle: ak.handle, name: ak.name };
  return createSigner(
    ak.publicArea,
    async ({ data }) => {
      const { digest: _digest, ...signature } = await signMessage(tpm, key, data, { ...opts, publicArea: ak.publicArea });
      return signature;
    },
  );
}
