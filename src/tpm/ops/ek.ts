/**
 * The Endorsement Key as a parent (TCG EK Credential Profile). A persisted EK that matches
 * the TCG template is used as it is; otherwise the EK is re-derived with CreatePrimary
 * (deterministic from the endorsement seed: same key every time) and flushed afterwards.
 */
import { createHash } from 'node:crypto';
import { CreatePrimary } from '../commands.js';
import { NODE_HASH, TPM_RH } from '../constants.js';
import type { NamedHandle } from '../command.js';
import type { TPMT_PUBLIC } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { TpmError, TPM_RC } from '../rc.js';
import { ekEccTemplate, ekRsaTemplate, matchesTemplate } from '../keys/templates.js';
import { flushQuietly, readPublic } from './objects.js';
import { withHierarchyAuth } from './session.js';

export type KeyType = 'rsa' | 'ecc';

/** The key types the library makes. */
export const KEY_TYPES: readonly KeyType[] = ['rsa', 'ecc'];

/**
 * Refuses anything but a known key type: a plain-JS caller's 'RSA' or 'ec' must not quietly
 * become some other key.
 */
export function assertKeyType(type: unknown): asserts type is KeyType {
  if (!(KEY_TYPES as readonly unknown[]).includes(type)) {
    throw new TypeError(`unknown key type ${JSON.stringify(type)}: expected one of ${KEY_TYPES.map((t) => `'${t}'`).join(', ')}`);
  }
}

/** A password as bytes: strings are UTF-8, as tpm2-tools' `-P str:`. */
function authBytes(auth: Uint8Array | string | undefined): Uint8Array {
  if (auth === undefined) return new Uint8Array(0);
  return typeof auth === 'string' ? new TextEncoder().encode(auth) : auth;
}

/**
 * The qualified name of a primary object of `hierarchy` (Part 1 §16 "Qualified Name"):
 * nameAlg ‖ H_nameAlg(hierarchy handle ‖ Name). Undefined when nameAlg is no hash we know.
 */
export function primaryQualifiedName(hierarchy: number, name: Uint8Array): Uint8Array | undefined {
  if (name.length < 2) return undefined;
  const alg = (name[0]! << 8) | name[1]!;
  const hash = NODE_HASH[alg];
  if (!hash) return undefined;
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, hierarchy);
  const digest = createHash(hash).update(h).update(name).digest();
  const out = new Uint8Array(2 + digest.length);
  out.set(name.subarray(0, 2), 0);
  out.set(digest, 2);
  return out;
}

/** Where a persisted EK may be: the TCG-recommended handles, then EVE's own EK. */
export const EK_PERSISTENT_HANDLES: Readonly<Record<KeyType, readonly number[]>> = {
  rsa: [0x81010001, 0x81000001],
  ecc: [0x81010002],
};

export function ekTemplate(type: KeyType): TPMT_PUBLIC {
  assertKeyType(type);
  return type === 'rsa' ? ekRsaTemplate() : ekEccTemplate();
}

/** The EK's handle with its Name: pass it as a handle, sessions on it get its Name. */
export interface EkHandle extends NamedHandle {
  handle: number;
  name: Uint8Array;
  /** True when created here (transient): the caller of `withEk` never flushes it itself. */
  transient: boolean;
}

/**
 * Finds a persisted EK of this type: a primary of the endorsement hierarchy (checked by its
 * qualified name: a look-alike made under the owner hierarchy is not an EK) matching the TCG
 * template. Undefined if there is none.
 */
export async function findPersistedEk(
  tpm: TpmRunner,
  type: KeyType,
  candidates: readonly number[] = EK_PERSISTENT_HANDLES[type],
  opts: RunOptions = {},
): Promise<EkHandle | undefined> {
  const template = ekTemplate(type);
  for (const handle of candidates) {
    try {
      const info = await readPublic(tpm, handle, opts);
      if (!matchesTemplate(info.publicArea, template)) continue;
      const qn = primaryQualifiedName(TPM_RH.ENDORSEMENT, info.name);
      if (qn && Buffer.from(qn).equals(Buffer.from(info.qualifiedName))) return { handle, name: info.name, transient: false };
    } catch (e) {
      // An empty slot answers TPM_RC_HANDLE: look at the next one. Anything else is real.
      if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) continue;
      throw e;
    }
  }
  return undefined;
}

/** TPM2_CreatePrimary(TPM_RH_ENDORSEMENT, TCG EK template): a transient EK to be flushed. */
export async function createTransientEk(tpm: TpmRunner, type: KeyType, opts: RunOptions & EndorsementAuthOptions = {}): Promise<EkHandle> {
  // A non-empty endorsement password goes through a salted HMAC session, never in clear.
  const given = opts.auth?.primaryHandle;
  const r = await withHierarchyAuth(
    tpm,
    given ? undefined : authBytes(opts.endorsementAuth),
    (auth) =>
      tpm.run(
        CreatePrimary,
        {
          primaryHandle: TPM_RH.ENDORSEMENT,
          inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
          inPublic: ekTemplate(type),
          outsideInfo: new Uint8Array(0),
          creationPCR: [],
        },
        { ...opts, auth: { ...opts.auth, primaryHandle: given ?? auth } },
      ),
    opts,
  );
  return { handle: r.objectHandle, name: r.name, transient: true };
}

export interface EndorsementAuthOptions {
  /** The endorsement hierarchy's password (`tpm2_createak -P`), if it was changed from empty. */
  endorsementAuth?: Uint8Array | string;
}

export interface EkOptions extends RunOptions, EndorsementAuthOptions {
  /** EK type used as parent (default 'rsa', as tpm2_createak). */
  ekType?: KeyType;
  /** Persistent handles to look for a persisted EK at (default EK_PERSISTENT_HANDLES). */
  ekHandles?: readonly number[];
}

/** Runs `fn` with an EK handle; a transient EK is flushed afterwards, success or failure. */
export async function withEk<T>(tpm: TpmRunner, fn: (ek: EkHandle) => Promise<T>, opts: EkOptions = {}): Promise<T> {
  const type = opts.ekType ?? 'rsa';
  assertKeyType(type);
  const ek = (await findPersistedEk(tpm, type, opts.ekHandles ?? EK_PERSISTENT_HANDLES[type], opts)) ?? (await createTransientEk(tpm, type, opts));
  try {
    return await fn(ek);
  } finally {
    if (ek.transient) await flushQuietly(tpm, ek.handle);
  }
}
