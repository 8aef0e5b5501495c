/**
 * The Endorsement Key as a parent (TCG EK Credential Profile). A persisted EK that matches
 * the TCG template is used as it is; otherwise the EK is re-derived with CreatePrimary
 * (deterministic from the endorsement seed: same key every time) and flushed afterwards.
 */
import { CreatePrimary } from '../commands.js';
import { TPM_RH } from '../constants.js';
import type { TPMT_PUBLIC } from '../structures.js';
import type { RunOptions, Tpm } from '../tpm.js';
import { TpmError, TPM_RC } from '../rc.js';
import { ekEccTemplate, ekRsaTemplate, matchesTemplate } from '../keys/templates.js';
import { flushQuietly, readPublic } from './objects.js';

export type KeyType = 'rsa' | 'ecc';

/** Where a persisted EK may be: the TCG-recommended handles, then EVE's own EK. */
export const EK_PERSISTENT_HANDLES: Readonly<Record<KeyType, readonly number[]>> = {
  rsa: [0x81010001, 0x81000001],
  ecc: [0x81010002],
};

export function ekTemplate(type: KeyType): TPMT_PUBLIC {
  return type === 'rsa' ? ekRsaTemplate() : ekEccTemplate();
}

export interface EkHandle {
  handle: number;
  name: Uint8Array;
  /** True when created here (transient): the caller of `withEk` never flushes it itself. */
  transient: boolean;
}

/** Finds a persisted EK of this type matching the TCG template, if any. */
export async function findPersistedEk(
  tpm: Tpm,
  type: KeyType,
  candidates: readonly number[] = EK_PERSISTENT_HANDLES[type],
  opts: RunOptions = {},
): Promise<EkHandle | undefined> {
  const template = ekTemplate(type);
  for (const handle of candidates) {
    try {
      const info = await readPublic(tpm, handle, opts);
      if (matchesTemplate(info.publicArea, template)) return { handle, name: info.name, transient: false };
    } catch (e) {
      // An empty slot answers TPM_RC_HANDLE: look at the next one. Anything else is real.
      if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) continue;
      throw e;
    }
  }
  return undefined;
}

/** TPM2_CreatePrimary(TPM_RH_ENDORSEMENT, TCG EK template): a transient EK to be flushed. */
export async function createTransientEk(tpm: Tpm, type: KeyType, opts: RunOptions = {}): Promise<EkHandle> {
  const r = await tpm.run(
    CreatePrimary,
    {
      primaryHandle: TPM_RH.ENDORSEMENT,
      inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
      inPublic: ekTemplate(type),
      outsideInfo: new Uint8Array(0),
      creationPCR: [],
    },
    opts,
  );
  return { handle: r.objectHandle, name: r.name, transient: true };
}

export interface EkOptions extends RunOptions {
  /** EK type used as parent (default 'rsa', as tpm2_createak). */
  ekType?: KeyType;
  /** Persistent handles to look for a persisted EK at (default EK_PERSISTENT_HANDLES). */
  ekHandles?: readonly number[];
}

/** Runs `fn` with an EK handle; a transient EK is flushed afterwards, success or failure. */
export async function withEk<T>(tpm: Tpm, fn: (ek: EkHandle) => Promise<T>, opts: EkOptions = {}): Promise<T> {
  const type = opts.ekType ?? 'rsa';
  const ek = (await findPersistedEk(tpm, type, opts.ekHandles ?? EK_PERSISTENT_HANDLES[type], opts)) ?? (await createTransientEk(tpm, type, opts));
  try {
    return await fn(ek);
  } finally {
    if (ek.transient) await flushQuietly(tpm, ek.handle);
  }
}
