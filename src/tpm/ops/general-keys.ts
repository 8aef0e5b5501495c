/**
 * General (non-restricted) keys under an app parent (issue 12). A key carries its usage in its
 * type: `GeneralKey<'sign'>` or `GeneralKey<'decrypt'>`, and so does the loaded handle
 * (`LoadedKey<U>`), so signing with a decrypt key does not compile; at run time the usage and
 * the key's own attributes are checked again before the TPM sees a command (KeyUsageError).
 */
import { Create, Load } from '../commands.js';
import { TPMA_OBJECT } from '../constants.js';
import type { HandleArg, NamedHandle } from '../command.js';
import { TPM2B_PRIVATE, TPM2B_PUBLIC, type TPMT_PUBLIC } from '../structures.js';
import { encode } from '../wire/codec.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { generalKeyTemplate, type GeneralKeySpec, type GeneralKeyUsage } from '../keys/general-templates.js';
import { objectName } from '../keys/public.js';
import { parseBlobs, type KeyBlobs } from './ak.js';
import { flushQuietly } from './objects.js';
import { withAppParent, type ServicePrimaryOptions } from './app-parent.js';

export class KeyUsageError extends Error {
  override readonly name = 'KeyUsageError';
}

/** A general key as the TPM wrapped it, with its usage. */
export interface GeneralKey<U extends GeneralKeyUsage = GeneralKeyUsage> extends KeyBlobs {
  readonly usage: U;
  readonly publicArea: TPMT_PUBLIC;
  readonly name: Uint8Array;
}
export type SigningKey = GeneralKey<'sign'>;
export type DecryptionKey = GeneralKey<'decrypt'>;

/** A loaded general key: its transient handle with its Name, usage and public area. */
export interface LoadedKey<U extends GeneralKeyUsage = GeneralKeyUsage> extends NamedHandle {
  readonly usage: U;
  readonly publicArea: TPMT_PUBLIC;
}

const FIXED = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent;

/** The usage a public area allows, or why it is no general key (restricted, both, neither, exportable). */
function usageOf(pub: TPMT_PUBLIC): GeneralKeyUsage | string {
  const a = pub.objectAttributes;
  if ((a & TPMA_OBJECT.restricted) !== 0) return 'it is restricted (an AK or a storage key, not a general key)';
  if ((a & FIXED) !== FIXED) return 'it is not fixedTPM and fixedParent';
  const sign = (a & TPMA_OBJECT.sign) !== 0;
  const decrypt = (a & TPMA_OBJECT.decrypt) !== 0;
  if (sign === decrypt) return sign ? 'it both signs and decrypts' : 'it neither signs nor decrypts';
  return sign ? 'sign' : 'decrypt';
}

/** Reads a general key from stored blobs: its usage comes from its own attributes. */
export function generalKeyFromBlobs(blobs: KeyBlobs): GeneralKey {
  const { publicArea } = parseBlobs(blobs);
  const usage = usageOf(publicArea);
  if (usage !== 'sign' && usage !== 'decrypt') throw new KeyUsageError(`not a general key: ${usage}`);
  return { public: blobs.public, private: blobs.private, usage, publicArea, name: objectName(publicArea) };
}

/**
 * Refuses a key whose usage is not `usage`, by its label and by its attributes (a plain-JS
 * caller, or a label that lies, must not get a decrypt key to sign).
 */
export function assertKeyUsage<U extends GeneralKeyUsage>(key: { usage: GeneralKeyUsage; publicArea: TPMT_PUBLIC }, usage: U): void {
  const actual = usageOf(key.publicArea);
  if (key.usage !== usage || actual !== usage) {
    const is = actual === 'sign' || actual === 'decrypt' ? `a ${actual} key` : `no general key (${actual})`;
    throw new KeyUsageError(`this key cannot ${usage === 'sign' ? 'sign' : 'decrypt'}: it is ${is}`);
  }
}

export function isSigningKey(key: GeneralKey): key is SigningKey {
  return key.usage === 'sign' && usageOf(key.publicArea) === 'sign';
}

export function isDecryptionKey(key: GeneralKey): key is DecryptionKey {
  return key.usage === 'decrypt' && usageOf(key.publicArea) === 'decrypt';
}

/** TPM2_Create of a general key under a loaded parent (an app parent). Nothing stays loaded. */
export async function createGeneralKey<S extends GeneralKeySpec>(tpm: TpmRunner, parent: HandleArg, spec: S, opts: RunOptions = {}): Promise<GeneralKey<S['usage']>> {
  const inPublic = generalKeyTemplate(spec);
  const r = await tpm.run(
    Create,
    { parentHandle: parent, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic, outsideInfo: new Uint8Array(0), creationPCR: [] },
    opts,
  );
  return {
    public: encode(TPM2B_PUBLIC, r.outPublic),
    private: encode(TPM2B_PRIVATE, r.outPrivate),
    usage: spec.usage,
    publicArea: r.outPublic,
    name: objectName(r.outPublic),
  };
}

/** TPM2_Load of a general key under a loaded parent; the caller flushes the handle. */
export async function loadGeneralKey<U extends GeneralKeyUsage>(tpm: TpmRunner, parent: HandleArg, key: GeneralKey<U>, opts: RunOptions = {}): Promise<LoadedKey<U>> {
  const { publicArea, privateBlob } = parseBlobs(key);
  assertKeyUsage({ usage: key.usage, publicArea }, key.usage);
  const r = await tpm.run(Load, { parentHandle: parent, inPrivate: privateBlob, inPublic: publicArea }, opts);
  return { handle: r.objectHandle, name: r.name, usage: key.usage, publicArea };
}

/**
 * Loads the app parent, then the key under it (the parent is flushed as soon as the key is
 * loaded: at most two objects at once), runs `fn`, flushes the key, success or failure.
 */
export async function withGeneralKey<U extends GeneralKeyUsage, T>(
  tpm: TpmRunner,
  parentBlobs: KeyBlobs,
  key: GeneralKey<U>,
  fn: (key: LoadedKey<U>) => Promise<T>,
  opts: ServicePrimaryOptions = {},
): Promise<T> {
  const loaded = await withAppParent(tpm, parentBlobs, (parent) => loadGeneralKey(tpm, parent, key, opts), opts);
  try {
    return await fn(loaded);
  } finally {
    await flushQuietly(tpm, loaded.handle);
  }
}
