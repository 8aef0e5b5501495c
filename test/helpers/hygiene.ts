/**
 * Resource hygiene: asserts that nothing stays loaded in the TPM after an operation — no
 * transient object (TPM_HT_TRANSIENT, 0x80000000–0x80ffffff: keys and hash sequences) and no
 * session, loaded or saved (HMAC sessions 0x02xxxxxx, policy sessions 0x03xxxxxx).
 *
 * swtpm has no resource manager: anything the library forgets to flush stays there and the
 * next few loads fail with TPM_RC_OBJECT_MEMORY / TPM_RC_SESSION_MEMORY. The check sends
 * GetCapability(TPM_CAP_HANDLES) itself, one query per handle type, instead of going through
 * the library's paging helper, so a bug there cannot hide a leak.
 */
import { expect } from 'vitest';
import { FlushContext, GetCapability } from '../../src/tpm/commands.js';
import { TPM_CAP } from '../../src/tpm/constants.js';
import type { TpmRunner as Tpm } from '../../src/tpm/tpm.js';

export const TRANSIENT_RANGE = [0x80000000, 0x80ffffff] as const;
/** Session handles: 0x02xxxxxx (HMAC) and 0x03xxxxxx (policy). */
export const SESSION_RANGE = [0x02000000, 0x03ffffff] as const;

/**
 * Every handle GetCapability(TPM_CAP_HANDLES) lists for one handle type (`type` = its top
 * byte), following moreData, keeping those in [lo, hi].
 *
 * The handle type asked for and the handles returned do not always agree: asked for
 * TPM_HT_LOADED_SESSION (0x02), the TPM lists loaded HMAC sessions as 0x02xxxxxx but loaded
 * *policy* sessions as 0x03xxxxxx (Part 3 §30.2; libtpms SessionCapGetLoaded), and asked for
 * TPM_HT_SAVED_SESSION (0x03) it lists saved sessions as 0x02xxxxxx. Paging therefore follows
 * the index (low 24 bits) within the type asked for, and the filter is by value range.
 */
export async function handlesIn(tpm: Tpm, type: number, lo: number, hi: number): Promise<number[]> {
  const out: number[] = [];
  let index = 0;
  for (let page = 0; page < 64; page++) {
    const property = ((type << 24) | index) >>> 0;
    const r = await tpm.run(GetCapability, { capability: TPM_CAP.HANDLES, property, propertyCount: 254 });
    const d = r.capabilityData;
    if (d.capability !== TPM_CAP.HANDLES) throw new Error(`GetCapability answered capability ${d.capability}, not TPM_CAP_HANDLES`);
    const hs = d.data;
    for (const h of hs) if (h >= lo && h <= hi && !out.includes(h)) out.push(h);
    const tail = hs[hs.length - 1];
    if (!r.moreData || tail === undefined) break;
    const nextIndex = (tail & 0xffffff) + 1;
    if (nextIndex <= index || nextIndex > 0xffffff) break;
    index = nextIndex;
  }
  return out;
}

export interface LoadedHandles {
  transient: number[];
  sessions: number[];
}

export async function loadedHandles(tpm: Tpm): Promise<LoadedHandles> {
  const transient = await handlesIn(tpm, 0x80, ...TRANSIENT_RANGE);
  const sessions = [...(await handlesIn(tpm, 0x02, ...SESSION_RANGE)), ...(await handlesIn(tpm, 0x03, ...SESSION_RANGE))];
  return { transient: transient.sort((a, b) => a - b), sessions: [...new Set(sessions)].sort((a, b) => a - b) };
}

const hexList = (hs: number[]): string[] => hs.map((h) => `0x${h.toString(16).padStart(8, '0')}`);

/** Flushes every transient object and session (best effort); returns what was flushed. */
export async function flushEverything(tpm: Tpm): Promise<LoadedHandles> {
  const loaded = await loadedHandles(tpm);
  for (const h of [...loaded.transient, ...loaded.sessions]) {
    await tpm.run(FlushContext, { flushHandle: h }).catch(() => {});
  }
  return loaded;
}

/**
 * Fails (naming the handles) if any transient object or session is loaded. What it finds is
 * flushed before failing, so one leak fails one test, not every test after it.
 */
export async function expectNothingLoaded(tpm: Tpm, after = ''): Promise<void> {
  const { transient, sessions } = await flushEverything(tpm);
  expect({ transient: hexList(transient), sessions: hexList(sessions) }, `left loaded${after ? ` after ${after}` : ''}`).toEqual({
    transient: [],
    sessions: [],
  });
}
