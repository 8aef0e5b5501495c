/**
 * What general keys do beyond signing a message (issue 12): sign a digest the caller computed
 * (as tpm2_sign -d), RSA-OAEP decryption and ECDH ZGen. Each is one TPM queue job on the
 * caller's own key (the handler authorized it), with the key's usage and the input's sizes
 * checked before the TPM sees a command; refusals say why. The library checks the usage again
 * (KeyUsageError); its refusals and the TPM's refusal of the caller's bytes are 4xx here.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  DIGEST_SIZE,
  DecryptInputError,
  GetRandom,
  KeyUsageError,
  TPM_RC,
  TpmError,
  ecdhZGen,
  formatSignature,
  oaepLabel,
  rsaDecrypt,
  signDigestWithKey,
  type LoadedKey,
  type NamedHandle,
  type TPMT_PUBLIC,
  type TpmRunner,
} from '../../tpm/index.js';
import { hex32 } from '../../tpm/constants.js';
import { keyShape, type KeyEntry, type KeyRegistry } from './registry.js';
import type { KeyManager, SignResult } from './keys.js';
import type { TpmQueue } from '../tpm/queue.js';
import type { Tenant } from '../tenants/tenants.js';
import { HASH_ALG, type HashName, type SignFormat } from '../protocol/params.js';
import { badRequest, conflict, ServiceError, unsupported } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import type { EccCurve } from '../protocol/vocabulary.js';

export interface GeneralOpsDeps {
  queue: TpmQueue;
  registry: KeyRegistry;
  keys: KeyManager;
}

export type GeneralOp = 'sign-digest' | 'decrypt' | 'ecdh';

/** Why `entry` cannot do `op` (a 422 sentence), or undefined when it can. */
export function refusal(entry: KeyEntry, op: GeneralOp): string | undefined {
  const s = keyShape(entry);
  const key = `key ${formatHandle(entry.handle)}`;
  if (op === 'sign-digest') {
    if (s.kind === 'ak') return `${key} is an attestation key: an attestation key signs only what the TPM hashed; send the message`;
    if (s.usage !== 'sign') return `${key} is a decrypt key (${s.scheme}): it cannot sign`;
    return undefined;
  }
  if (op === 'decrypt') {
    if (s.usage !== 'decrypt') return `${key} is a signing key (${s.scheme}): it cannot decrypt`;
    if (entry.type !== 'rsa') return `${key} is an ECC decrypt key: RSA decryption needs an RSA oaep key; use ecdh`;
    return undefined;
  }
  if (entry.type !== 'ecc') return `${key} is an RSA key: ECDH needs an ECC decrypt key (scheme ecdh)${s.usage === 'decrypt' ? '; use decrypt' : ''}`;
  if (s.usage !== 'decrypt') return `${key} is a signing key (${s.scheme}): it cannot agree on a secret; ECDH needs an ECC decrypt key (scheme ecdh)`;
  return undefined;
}

function requireUsage(entry: KeyEntry, op: GeneralOp): void {
  const why = refusal(entry, op);
  if (why !== undefined) throw unsupported(why);
}

const PEM_PUBLIC = /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\r?\n?$/;

/** The peer's PEM SubjectPublicKeyInfo, an EC key on `curve`: its KeyObject, or a 400 saying what it is. */
export function parsePeerPem(text: string, curve: EccCurve): KeyObject {
  // A private key PEM would also give a public key: only a public one is taken.
  if (!PEM_PUBLIC.test(text)) throw badRequest('peer must be a PEM public key (-----BEGIN PUBLIC KEY-----, SubjectPublicKeyInfo)');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw badRequest('peer is not a valid public key (its PEM does not decode to a SubjectPublicKeyInfo, or its point is not on its curve)');
  }
  if (key.asymmetricKeyType !== 'ec') throw badRequest(`peer is a ${key.asymmetricKeyType ?? 'non-EC'} key; ECDH needs an EC key on ${curve}`);
  const crv = key.export({ format: 'jwk' }).crv;
  if (crv !== curve) throw badRequest(`peer is on ${crv ?? 'an unnamed curve'}; this key is on ${curve}`);
  return key;
}

/**
 * libtpms (0.9, OpenSSL back end) answers TPM_RC_FAILURE when it cannot unpad an OAEP
 * ciphertext, without entering failure mode. A TPM in failure mode refuses every command but
 * GetCapability and GetTestResult (Part 3 §5.3), so one GetRandom tells the two apart: the
 * TPM still works → the ciphertext was the problem (reported as the TPM's parameter error).
 */
async function unpadFailure(tpm: TpmRunner, e: unknown): Promise<unknown> {
  if (!(e instanceof TpmError) || e.command !== 'RSA_Decrypt' || !e.is(TPM_RC.FAILURE)) return e;
  try {
    await tpm.run(GetRandom, { bytesRequested: 1 });
  } catch {
    return e; // really failed: the common mapping tells it (502)
  }
  return new CiphertextError(e);
}

/** A ciphertext the TPM could not decrypt although it works (see unpadFailure). */
class CiphertextError extends Error {
  override readonly name = 'CiphertextError';
  constructor(readonly tpmError: TpmError) {
    super(tpmError.message);
  }
}

/** The caller's own bytes refused by the library or the TPM: a 4xx that says so, the TPM's code kept. */
function callerFault(e: unknown, what: string | undefined): unknown {
  if (what !== undefined && e instanceof CiphertextError) {
    const t = e.tpmError;
    return new ServiceError(400, 'BAD_REQUEST', `${what} (the TPM refused TPM2_RSA_Decrypt: ${t.message})`, { tpmRc: hex32(t.rc), tpmText: t.message, cause: t });
  }
  if (e instanceof DecryptInputError) return badRequest(e.message);
  if (e instanceof KeyUsageError) return unsupported(e.message);
  // Load's parameters are the key's own blobs: key-health.ts tells that story.
  if (what !== undefined && e instanceof TpmError && e.kind === 'parameter' && e.command !== 'Load') {
    const why = e.is(TPM_RC.ECC_POINT) ? 'the peer point is not on the key\'s curve' : what;
    return new ServiceError(400, 'BAD_REQUEST', `${why} (the TPM refused TPM2_${e.command ?? 'command'}: ${e.message})`, { tpmRc: hex32(e.rc), tpmText: e.message, cause: e });
  }
  return e;
}

export class GeneralKeyOps {
  constructor(private readonly d: GeneralOpsDeps) {}

  /**
   * One queue job with the entry's general key loaded (or cached) as the library's LoadedKey
   * of the usage keyShape gives; the library checks it against the key's attributes.
   */
  private job<T>(tenant: Tenant, entry: KeyEntry, label: string, signal: AbortSignal, fn: (tpm: TpmRunner, key: LoadedKey) => Promise<T>, fault?: string): Promise<T> {
    const usage = keyShape(entry).usage;
    return this.d.queue
      .submit(
        tenant.id,
        label,
        async (tpm) => {
          // A DELETE may have started since the request was authorized.
          if (this.d.registry.get(entry.handle)?.state !== 'committed') throw conflict(`key ${formatHandle(entry.handle)} is being deleted`);
          return await this.d.keys.withKey(tpm, entry, (key: NamedHandle & { publicArea: TPMT_PUBLIC }) => fn(tpm, { ...key, usage }));
        },
        { signal },
      )
      .catch((e: unknown) => {
        throw callerFault(e, fault);
      });
  }

  /** TPM2_Sign of `digest` with a general signing key (NULL ticket, the key's scheme). */
  async signDigest(tenant: Tenant, entry: KeyEntry, digest: Uint8Array, hashAlg: HashName, format: SignFormat, signal: AbortSignal): Promise<SignResult> {
    requireUsage(entry, 'sign-digest');
    if (hashAlg !== entry.hashAlg) throw unsupported(`key ${formatHandle(entry.handle)} signs only ${entry.hashAlg} digests (its scheme is fixed), not ${hashAlg}`);
    const alg = HASH_ALG[hashAlg];
    const size = DIGEST_SIZE[alg]!;
    if (digest.length !== size) throw badRequest(`a ${hashAlg} digest is ${size} bytes, not ${digest.length}`);
    const sig = await this.job(tenant, entry, 'sign', signal, (tpm, key) => signDigestWithKey(tpm, key as LoadedKey<'sign'>, digest, { hashAlg: alg }));
    // No message: the TPM hashed nothing (messageLength 0, docs/API.md).
    return { sig, signature: formatSignature(sig, format), digest, messageLength: 0 };
  }

  /** TPM2_RSA_Decrypt (the key's OAEP) of `ciphertext`. */
  async decrypt(tenant: Tenant, entry: KeyEntry, ciphertext: Uint8Array, label: string | undefined, signal: AbortSignal): Promise<Uint8Array> {
    requireUsage(entry, 'decrypt');
    const bits = keyShape(entry).bits ?? 2048;
    if (ciphertext.length !== bits / 8) throw badRequest(`the ciphertext is ${ciphertext.length} bytes; an RSA-${bits} ciphertext is exactly ${bits / 8}`);
    let labelBytes: Uint8Array;
    try {
      labelBytes = oaepLabel(label);
    } catch (e) {
      throw callerFault(e, undefined);
    }
    return this.job(
      tenant,
      entry,
      'decrypt',
      signal,
      (tpm, key) =>
        rsaDecrypt(tpm, key as LoadedKey<'decrypt'>, ciphertext, { label: labelBytes }).catch(async (e: unknown) => {
          throw await unpadFailure(tpm, e);
        }),
      `the ciphertext does not decrypt with this key (RSA-OAEP with ${entry.hashAlg}${label ? ' and the label given' : ', no label'}): encrypted to another key, with another label or hash, or damaged`,
    );
  }

  /** TPM2_ECDH_ZGen with the peer's public key (PEM). */
  async ecdh(tenant: Tenant, entry: KeyEntry, peerPem: string, signal: AbortSignal): Promise<Uint8Array> {
    requireUsage(entry, 'ecdh');
    const peer = parsePeerPem(peerPem, keyShape(entry).curve ?? 'P-256');
    return this.job(tenant, entry, 'ecdh', signal, (tpm, key) => ecdhZGen(tpm, key as LoadedKey<'decrypt'>, peer), 'the TPM refused the peer key');
  }
}
