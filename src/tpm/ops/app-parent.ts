/**
 * The per-app storage parent (issue 12): general keys live under a storage key of their own app,
 * itself a child of the service's storage primary (owner hierarchy, see general-templates.ts).
 *
 * Crypto-erase: the app parent is made by TPM2_Create, so its private key and its seedValue (from
 * which the keys protecting each child's private part are derived: Part 1, "Protected Storage")
 * are random and exist only inside its wrapped blob. Destroying that blob destroys every key
 * under it, wherever copies of the children's blobs remain. (A primary-derived parent would be
 * re-derivable: not erasure.)
 */
import { Create, CreatePrimary, Load } from '../commands.js';
import { TPM_RH } from '../constants.js';
import type { NamedHandle } from '../command.js';
import { TPM2B_PRIVATE, TPM2B_PUBLIC } from '../structures.js';
import { encode } from '../wire/codec.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { appParentTemplate, servicePrimaryTemplate } from '../keys/general-templates.js';
import { matchesTemplate } from '../keys/templates.js';
import { objectName } from '../keys/public.js';
import { parseBlobs, type CreatedKey, type KeyBlobs } from './ak.js';
import { flushQuietly, readPublic } from './objects.js';
import { withHierarchyAuth } from './session.js';

export interface ServicePrimaryOptions extends RunOptions {
  /** The owner hierarchy's password, if it is not empty (sent through a salted session). */
  ownerAuth?: Uint8Array | string;
  /** A persistent handle where the service primary was made persistent: used as it is, never flushed. */
  servicePrimaryHandle?: number;
}

export class AppParentError extends Error {
  override readonly name = 'AppParentError';
}

/** The service primary's handle with its Name; `transient` ones are flushed by `withServicePrimary`. */
export interface ServicePrimary extends NamedHandle {
  transient: boolean;
}

/**
 * TPM2_CreatePrimary(TPM_RH_OWNER, servicePrimaryTemplate()): the same key every time (derived
 * from the owner seed), loaded transient; or the persisted one named in the options, checked
 * against the template first.
 */
export async function createServicePrimary(tpm: TpmRunner, opts: ServicePrimaryOptions = {}): Promise<ServicePrimary> {
  if (opts.servicePrimaryHandle !== undefined) {
    const info = await readPublic(tpm, opts.servicePrimaryHandle, opts);
    // Only the template can be checked: the label in `unique` went into the derivation, not the key.
    if (!matchesTemplate(info.publicArea, servicePrimaryTemplate())) throw new AppParentError(`0x${opts.servicePrimaryHandle.toString(16)} is not the service's storage primary (its template differs)`);
    return { handle: opts.servicePrimaryHandle, name: info.name, transient: false };
  }
  const r = await withHierarchyAuth(
    tpm,
    opts.ownerAuth,
    (auth) =>
      tpm.run(
        CreatePrimary,
        {
          primaryHandle: TPM_RH.OWNER,
          inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
          inPublic: servicePrimaryTemplate(),
          outsideInfo: new Uint8Array(0),
          creationPCR: [],
        },
        { ...opts, auth: { primaryHandle: auth } },
      ),
    opts,
  );
  return { handle: r.objectHandle, name: r.name, transient: true };
}

/** Runs `fn` with the service primary; a transient one is flushed afterwards, success or failure. */
export async function withServicePrimary<T>(tpm: TpmRunner, fn: (primary: ServicePrimary) => Promise<T>, opts: ServicePrimaryOptions = {}): Promise<T> {
  const primary = await createServicePrimary(tpm, opts);
  try {
    return await fn(primary);
  } finally {
    if (primary.transient) await flushQuietly(tpm, primary.handle);
  }
}

/** Creates a new app parent under the service primary: its blobs are all there is of it. Nothing stays loaded. */
export async function createAppParent(tpm: TpmRunner, opts: ServicePrimaryOptions = {}): Promise<CreatedKey> {
  const r = await withServicePrimary(
    tpm,
    (primary) =>
      tpm.run(
        Create,
        {
          parentHandle: primary,
          inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
          inPublic: appParentTemplate(),
          outsideInfo: new Uint8Array(0),
          creationPCR: [],
        },
        opts,
      ),
    opts,
  );
  return { public: encode(TPM2B_PUBLIC, r.outPublic), private: encode(TPM2B_PRIVATE, r.outPrivate), publicArea: r.outPublic, name: objectName(r.outPublic) };
}

/**
 * Loads an app parent from its blobs (the service primary is flushed again at once); returns
 * its transient handle with its Name, for the caller to flush. Blobs that are not an app parent
 * are refused before the TPM sees them.
 */
export async function loadAppParent(tpm: TpmRunner, blobs: KeyBlobs, opts: ServicePrimaryOptions = {}): Promise<NamedHandle> {
  const { publicArea, privateBlob } = parseBlobs(blobs);
  if (!matchesTemplate(publicArea, appParentTemplate())) throw new AppParentError('these blobs are not an app parent (restricted ECC P-256 storage key, AES-128-CFB)');
  const r = await withServicePrimary(tpm, (primary) => tpm.run(Load, { parentHandle: primary, inPrivate: privateBlob, inPublic: publicArea }, opts), opts);
  return { handle: r.objectHandle, name: r.name };
}

/** Runs `fn` with the app parent loaded; flushed afterwards, success or failure. */
export async function withAppParent<T>(tpm: TpmRunner, blobs: KeyBlobs, fn: (parent: NamedHandle) => Promise<T>, opts: ServicePrimaryOptions = {}): Promise<T> {
  const parent = await loadAppParent(tpm, blobs, opts);
  try {
    return await fn(parent);
  } finally {
    await flushQuietly(tpm, parent.handle);
  }
}
