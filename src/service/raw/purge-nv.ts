/**
 * Undefines every NV index in a purged app's range (docs/FIREWALL.md "NV"): the range is the
 * app's alone, so whatever the chip holds there is the app's. The owner's authorization is
 * the empty password, as the firewall forwards it for the app's own NV_UndefineSpace.
 */
import { GetCapability, TPM_CAP, TPM_RH, type TpmRunner } from '../../tpm/index.js';
import { NV_UndefineSpace } from '../../firewall/commands.js';
import { inRange, type HandleRange } from '../../firewall/app.js';

export async function undefineRange(tpm: TpmRunner, range: HandleRange): Promise<number> {
  const cap = await tpm.run(GetCapability, { capability: TPM_CAP.HANDLES as never, property: range.first, propertyCount: range.last - range.first + 1 });
  const data = cap.capabilityData as { data: unknown };
  const indices = (data.data as number[]).filter((h) => inRange(h, range));
  for (const nvIndex of indices) await tpm.run(NV_UndefineSpace, { authHandle: TPM_RH.OWNER, nvIndex });
  return indices.length;
}
