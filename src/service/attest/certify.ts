/**
 * TPM2_Certify jobs: the caller's AK certifies another key of the caller, or the device's
 * attestation key certifies the caller's key.
 *
 * Both keys are in the TPM at once. A `blobs` key needs the EK (a general key: its app parent,
 * and the service primary before that) loaded while it is loaded, and a
 * streamed sign may keep a hash sequence loaded (config hashSlots): EK, signer, object and
 * sequence would be one more than swtpm's 3 object slots. So a transient object is loaded
 * first and context-saved out while the signer is loaded, then loaded back; nothing stays
 * loaded afterwards.
 */
import {
  ContextLoad,
  ContextSave,
  TPM_RC,
  TpmError,
  certify,
  flush,
  objectAttrs,
  readPublic,
  type AttestResult,
  type NamedHandle,
  type PublicInfo,
  type TPM_ST_ATTEST,
  type TPMS_CONTEXT,
  type TpmRunner,
} from '../../tpm/index.js';
import { loadEntryKey, withEntryKey } from '../keys/key-in-tpm.js';
import { conflict } from '../protocol/errors.js';
import { formatHandle } from '../protocol/handles.js';
import { blame, type JobKey } from './key-jobs.js';

export type CertifyResult = AttestResult<typeof TPM_ST_ATTEST.CERTIFY>;

const flushQuietly = (tpm: TpmRunner, handle: number): Promise<void> => flush(tpm, handle).catch(() => {});

interface SavedObject {
  context: TPMS_CONTEXT;
  name: Uint8Array;
}

/** Loads a `blobs` key (under the EK or its app's parent, flushed again) and keeps only its saved context. */
async function setAside(tpm: TpmRunner, key: JobKey): Promise<SavedObject> {
  const loaded = await loadEntryKey(tpm, key.entry, key);
  try {
    const { context } = await tpm.run(ContextSave, { saveHandle: loaded.handle });
    return { context, name: loaded.name };
  } finally {
    await flushQuietly(tpm, loaded.handle);
  }
}

/** The caller's AK `signer` certifies the caller's key `object`. */
export async function certifyOwnKey(tpm: TpmRunner, signer: JobKey, object: JobKey, qualifyingData: Uint8Array): Promise<CertifyResult> {
  const bySigner = (o: NamedHandle): Promise<CertifyResult> => blame(signer.entry, () => withEntryKey(tpm, signer.entry, signer, (s) => certify(tpm, s, o, { qualifyingData })));
  if (object.entry.store === 'tpm') return blame(object.entry, () => withEntryKey(tpm, object.entry, object, bySigner));
  const saved = await blame(object.entry, () => setAside(tpm, object));
  return blame(signer.entry, () =>
    withEntryKey(tpm, signer.entry, signer, async (s) => {
      const { loadedHandle } = await tpm.run(ContextLoad, { context: saved.context });
      try {
        return await certify(tpm, s, { handle: loadedHandle, name: saved.name }, { qualifyingData });
      } finally {
        await flushQuietly(tpm, loadedHandle);
      }
    }),
  );
}

/**
 * The device's attestation key, read at its persistent handle: absent, or not a restricted
 * signing key (which would sign anything, and so prove nothing), it is refused with a 409.
 */
export async function deviceKey(tpm: TpmRunner, handle: number): Promise<PublicInfo> {
  let info: PublicInfo;
  try {
    info = await readPublic(tpm, handle);
  } catch (e) {
    if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) throw conflict(`the device attestation key ${formatHandle(handle)} is not in the TPM`);
    throw e;
  }
  const attrs = info.publicArea.objectAttributes;
  if (!objectAttrs.has(attrs, 'restricted') || !objectAttrs.has(attrs, 'sign')) {
    throw conflict(`the object at ${formatHandle(handle)} is not a restricted signing key, so it is not used as the device attestation key`);
  }
  return info;
}

/** The device's key (empty password, as EVE's AIK has) certifies the caller's key. */
export function certifyByDevice(tpm: TpmRunner, device: PublicInfo, object: JobKey, qualifyingData: Uint8Array): Promise<CertifyResult> {
  return withEntryKey(tpm, object.entry, object, (o) => certify(tpm, device, o, { qualifyingData }));
}
