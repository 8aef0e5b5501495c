/**
 * The general-key fields of POST /v1/keys (issue 12), parsed strictly: kind "general" takes
 * usage (default sign), scheme (default the first that fits type and usage), bits (RSA: 2048
 * or 3072) or curve (ECC: P-256 or P-384); an AK (no kind, or "ak") takes none of them.
 */
import { badRequest } from '../protocol/errors.js';
import { parseEccCurve, parseKeyKind, parseKeyScheme, parseKeyUsage, parseRsaBits } from '../protocol/params.js';
import { GENERAL_SCHEMES, type KeyType } from '../protocol/vocabulary.js';
import type { GeneralShape } from './keys.js';

const GENERAL_FIELDS = ['usage', 'scheme', 'bits', 'curve'] as const;

/** undefined: an AK; otherwise the general key's shape, every field consistent with `type`. */
export function parseGeneralShape(body: Record<string, unknown>, type: KeyType): GeneralShape | undefined {
  const kind = body.kind === undefined ? 'ak' : parseKeyKind(body.kind);
  if (kind === 'ak') {
    const given = GENERAL_FIELDS.filter((f) => body[f] !== undefined);
    if (given.length > 0) throw badRequest(`${given.map((f) => `"${f}"`).join(', ')} apply to general keys only (kind "general"); an attestation key is a restricted signing key with a fixed scheme`);
    return undefined;
  }
  const usage = body.usage === undefined ? 'sign' : parseKeyUsage(body.usage);
  const scheme = body.scheme === undefined ? GENERAL_SCHEMES[type][usage][0]! : parseKeyScheme(body.scheme, type, usage);
  if (type === 'rsa') {
    if (body.curve !== undefined) throw badRequest('an RSA key has no curve; its size is "bits" (2048 or 3072)');
    return { usage, scheme, bits: body.bits === undefined ? 2048 : parseRsaBits(body.bits) };
  }
  if (body.bits !== undefined) throw badRequest('an ECC key has no "bits"; its size is its "curve" (P-256 or P-384)');
  return { usage, scheme, curve: body.curve === undefined ? 'P-256' : parseEccCurve(body.curve) };
}
