/**
 * Attestation keys ("AIK pairs") as `tpm2_createak` makes them: a restricted signing key,
 * child of the EK, created and loaded through a PolicySecret(TPM_RH_ENDORSEMENT) session.
 * The TPM returns the key wrapped by the EK (public + private blobs); those blobs are what
 * callers keep, and the key is loaded again from them when it is used.
 */
import { Create, Load } from '../commands.js';
import { TPM_ALG } from '../constants.js';
import { TPM2B_PRIVATE, TPM2B_PUBLIC, type TPMT_PUBLIC } from '../structures.js';
import { decode, encode } from '../wire/codec.js';
import type { TpmRunner } from '../tpm.js';
import type { NamedHandle } from '../command.js';
import { akEccTemplate, akRsaTemplate } from '../keys/templates.js';
import { objectName } from '../keys/public.js';
import { assertKeyType, withEk, type EkOptions, type KeyType } from './ek.js';
import { withEndorsementPolicy } from './session.js';
import { flushQuietly, makePersistent } from './objects.js';

/** A key as the TPM wrapped it: TPM2B_PUBLIC and TPM2B_PRIVATE bytes (tpm2-tools' .pub/.priv format). */
export interface KeyBlobs {
  public: Uint8Array;
  private: Uint8Array;
}

export interface CreatedKey extends KeyBlobs {
  publicArea: TPMT_PUBLIC;
  name: Uint8Array;
}

export interface CreateAkOptions extends EkOptions {
  /** Hash of the key's signing scheme (default SHA-256). */
  hashAlg?: number;
}

/** The AK template of a key type; anything but 'rsa' or 'ecc' is a TypeError. */
export function akTemplate(type: KeyType, hashAlg: number = TPM_ALG.SHA256): TPMT_PUBLIC {
  assertKeyType(type);
  return type === 'rsa' ? akRsaTemplate(hashAlg) : akEccTemplate(hashAlg);
}

/**
 * Creates an AK under the EK. Nothing stays loaded: EK (if transient) and session are flushed.
 * `opts.endorsementAuth` is the endorsement hierarchy's password, if it is not empty.
 */
export async function createAk(tpm: TpmRunner, type: KeyType, opts: CreateAkOptions = {}): Promise<CreatedKey> {
  const inPublic = akTemplate(type, opts.hashAlg);
  const r = await withEk(
    tpm,
    (ek) =>
      withEndorsementPolicy(
        tpm,
        (auth) =>
          tpm.run(
            Create,
            {
              parentHandle: ek,
              inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
              inPublic,
              outsideInfo: new Uint8Array(0),
              creationPCR: [],
            },
            { ...opts, auth: { parentHandle: auth } },
          ),
        opts,
      ),
    opts,
  );
  return {
    public: encode(TPM2B_PUBLIC, r.outPublic),
    private: encode(TPM2B_PRIVATE, r.outPrivate),
    publicArea: r.outPublic,
    name: objectName(r.outPublic),
  };
}

/** Parses stored blobs strictly (a corrupt file gives TpmDecodeError, never a half key). */
export function parseBlobs(blobs: KeyBlobs): { publicArea: TPMT_PUBLIC; privateBlob: Uint8Array } {
  return { publicArea: decode(TPM2B_PUBLIC, blobs.public), privateBlob: decode(TPM2B_PRIVATE, blobs.private) };
}

/**
 * Loads a key from its blobs under the EK; returns the transient handle with the key's Name,
 * which the caller must flush (or use `withLoadedKey`). EK and session are flushed here.
 */
export async function loadKey(tpm: TpmRunner, blobs: KeyBlobs, opts: EkOptions = {}): Promise<NamedHandle> {
  const { publicArea, privateBlob } = parseBlobs(blobs);
  const r = await withEk(
    tpm,
    (ek) =>
      withEndorsementPolicy(
        tpm,
        (auth) => tpm.run(Load, { parentHandle: ek, inPrivate: privateBlob, inPublic: publicArea }, { ...opts, auth: { parentHandle: auth } }),
        opts,
      ),
    opts,
  );
  return { handle: r.objectHandle, name: r.name };
}

/**
 * Loads a key, runs `fn` with its handle (and the handle with its Name, for sessions that need
 * it), flushes it afterwards (success or failure).
 */
export async function withLoadedKey<T>(
  tpm: TpmRunner,
  blobs: KeyBlobs,
  fn: (handle: number, key: NamedHandle) => Promise<T>,
  opts: EkOptions = {},
): Promise<T> {
  const key = await loadKey(tpm, blobs, opts);
  try {
    return await fn(key.handle, key);
  } finally {
    await flushQuietly(tpm, key.handle);
  }
}

/** Loads a key from its blobs and makes it persistent at `persistentHandle`; nothing stays loaded. */
export async function persistKey(tpm: TpmRunner, blobs: KeyBlobs, persistentHandle: number, opts: EkOptions = {}): Promise<void> {
  await withLoadedKey(tpm, blobs, (_h, key) => makePersistent(tpm, key, persistentHandle, opts), opts);
}
