/**
 * GetCapability(TPM_CAP_HANDLES) as the app sees it (Part 3 §30.2; attacks 7 and 12): its
 * transient objects, virtual persistent handles and sessions come from the firewall's own
 * records (the chip's lists name other apps' and EVE's); NV handle lists from the chip are
 * cut to the app's NV range. PCR and permanent handle lists are the same for everyone.
 * TPM_CAP_TPM_PROPERTIES: the counts are the app's own (properties.ts).
 */
import { TPM_CAP, TPM_HT } from '../tpm/constants.js';
import { GetCapability } from '../tpm/commands.js';
import { marshalResponse, type CommandOutput } from '../tpm/command.js';
import { inRange, type Connection } from './app.js';
import { appProperties, type TaggedProperty } from './properties.js';
import { typeOf } from './slots.js';

/** The most handles one TPML_HANDLE carries (MAX_CAP_HANDLES for a 1024-byte buffer). */
const MAX_CAP_HANDLES = 254;

type Output = CommandOutput<typeof GetCapability>;

function answer(handles: number[], moreData: boolean): Uint8Array {
  const out = { moreData, capabilityData: { capability: TPM_CAP.HANDLES, data: handles } } as unknown as Output;
  return marshalResponse(GetCapability, out);
}

/** The response for a handle list the firewall answers itself, or undefined to ask the chip. */
export function localHandles(conn: Connection, capability: number, property: number, count: number): Uint8Array | undefined {
  if (capability !== TPM_CAP.HANDLES) return undefined;
  const t = typeOf(property);
  let all: number[];
  if (t === TPM_HT.TRANSIENT) all = [...conn.transients.keys()];
  else if (t === TPM_HT.PERSISTENT) all = [...conn.app.persistents.keys()];
  else if (t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION) all = [...conn.sessions].filter((h) => typeOf(h) === t);
  else return undefined;
  const from = all.filter((h) => h >= property).sort((a, b) => a - b);
  const n = Math.min(count, MAX_CAP_HANDLES);
  return answer(from.slice(0, n), from.length > n);
}

/**
 * Cuts a chip's NV handle list to the app's range and puts the app's counts in a property list;
 * other answers are returned as they are.
 */
export function filterCapability(conn: Connection, out: Output, frame: Uint8Array): Uint8Array {
  const data = out.capabilityData as { capability: number; data: unknown };
  if (data.capability === TPM_CAP.TPM_PROPERTIES) {
    const props = appProperties(conn, data.data as TaggedProperty[]);
    return marshalResponse(GetCapability, { moreData: out.moreData, capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, data: props } } as unknown as Output);
  }
  if (data.capability !== TPM_CAP.HANDLES) return frame;
  const handles = data.data as number[];
  if (!handles.some((h) => typeOf(h) === TPM_HT.NV_INDEX)) return frame;
  return answer(
    handles.filter((h) => typeOf(h) !== TPM_HT.NV_INDEX || inRange(h, conn.app.nvRange)),
    out.moreData,
  );
}
