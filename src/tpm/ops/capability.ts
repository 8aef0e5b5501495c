/**
 * TPM2_GetCapability helpers (Part 3 §30.2): all pages of a capability, a single TPM
 * property, the persistent handles in use.
 */
import { GetCapability } from '../commands.js';
import { TPM_CAP, TPM_PT, hex32 } from '../constants.js';
import { TpmDecodeError } from '../wire/errors.js';
import type { TpmRunner } from '../tpm.js';
import type { RunOptions } from '../tpm.js';

/** A TPM that answers GetCapability with another capability than asked (Part 3 §30.2); the field is at offset 11, after the header and moreData. */
function wrongCapability(got: number, asked: number): TpmDecodeError {
  return new TpmDecodeError(`GetCapability answered capability ${hex32(got)}, not the ${hex32(asked)} asked for`, 'GetCapability.response.capabilityData.capability', 11);
}

/** Persistent object handles currently in the TPM (TPM_HT_PERSISTENT, 0x81xxxxxx). */
export async function listPersistentHandles(tpm: TpmRunner, opts: RunOptions = {}): Promise<number[]> {
  return listHandles(tpm, 0x81000000, 0x81ffffff, opts);
}

/** Handles in [first, last], following moreData across pages. */
export async function listHandles(tpm: TpmRunner, first: number, last: number, opts: RunOptions = {}): Promise<number[]> {
  const out: number[] = [];
  let next = first;
  for (let page = 0; page < 1000; page++) {
    const r = await tpm.run(GetCapability, { capability: TPM_CAP.HANDLES, property: next, propertyCount: 254 }, opts);
    const d = r.capabilityData;
    if (d.capability !== TPM_CAP.HANDLES) throw wrongCapability(d.capability, TPM_CAP.HANDLES);
    const handles = d.data;
    let beyond = false;
    for (const h of handles) {
      if (h > last) {
        beyond = true;
        break;
      }
      if (h >= next) out.push(h);
    }
    const tail = handles[handles.length - 1];
    if (!r.moreData || beyond || tail === undefined || tail >= last) break;
    next = tail + 1;
  }
  return out;
}

/** One TPM_PT property's value, or undefined if the TPM does not report it. */
export async function getTpmProperty(tpm: TpmRunner, property: number, opts: RunOptions = {}): Promise<number | undefined> {
  const r = await tpm.run(GetCapability, { capability: TPM_CAP.TPM_PROPERTIES, property, propertyCount: 1 }, opts);
  const d = r.capabilityData;
  if (d.capability !== TPM_CAP.TPM_PROPERTIES) throw wrongCapability(d.capability, TPM_CAP.TPM_PROPERTIES);
  const props = d.data;
  return props.find((p) => p.property === property)?.value;
}

const inputBufferCache = new WeakMap<object, number>();

/**
 * TPM_PT_INPUT_BUFFER: the largest TPM2B_MAX_BUFFER the TPM takes (≥ 1024 by the PC Client
 * profile). Asked once per transport (i.e. per TPM connection: wrappers such as the service's
 * per-job Tpm views share it); capped at 1024 because our TPM2B_MAX_BUFFER codec is.
 */
export async function maxInputBuffer(tpm: TpmRunner, opts: RunOptions = {}): Promise<number> {
  const key: object = tpm.connection;
  const cached = inputBufferCache.get(key);
  if (cached !== undefined) return cached;
  const v = (await getTpmProperty(tpm, TPM_PT.INPUT_BUFFER, opts)) ?? 1024;
  const size = Math.max(1, Math.min(v, 1024));
  inputBufferCache.set(key, size);
  return size;
}
