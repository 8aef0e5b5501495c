/**
 * A verifier's keys arrive as PEM (or DER) SubjectPublicKeyInfo, what `tpm2_readpublic -f pem`
 * and `eve_tools_tpm2_pubgetaik` write; the verification functions take TPMT_PUBLIC. A SPKI
 * carries the key but not what the TPM knows of it (attributes, scheme, policy), so the caller
 * says what the key is:
 *
 * - `signingPublicFromSpki`: a restricted signing key (an AK, as tpm2_createak makes it) with
 *   the given scheme and hash — the scheme the signatures must use;
 * - `ekPublicFromSpki`: the TCG EK of the low range (EK Credential Profile templates L-1 RSA 2048
 *   and L-2 ECC NIST P-256: AES-128-CFB, nameAlg SHA-256, policy A). What MakeCredential needs of
 *   it is its key, nameAlg and symmetric algorithm; a key of another size or curve is refused,
 *   since it cannot be an EK made from those templates.
 *
 * The Name of such a public area is not the key's real Name (the attributes are assumed): use
 * the TPM2B_PUBLIC (tpm2_readpublic -o) when the Name matters.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { TPM_ALG } from '../constants.js';
import { akEccTemplate, akRsaTemplate, ekEccTemplate, ekRsaTemplate } from '../keys/templates.js';
import { CURVES, KeyFormatError } from '../keys/public.js';
import { hashAlgOf, type EccPublic, type RsaPublic, type TPMT_PUBLIC } from '../structures.js';

/** The key of a SubjectPublicKeyInfo: PEM text, or DER bytes (PEM bytes are taken too). */
export type SpkiInput = string | Uint8Array;

export interface SigningSchemeOptions {
  /** TPM_ALG_RSASSA (default for RSA), TPM_ALG_RSAPSS, or TPM_ALG_ECDSA (the only one for ECC). */
  scheme?: number;
  /** The scheme's hash (TPM_ALG_ID); default TPM_ALG_SHA256. */
  hashAlg?: number;
}

const b64url = (s: string | undefined, what: string): Uint8Array => {
  if (typeof s !== 'string' || s.length === 0) throw new KeyFormatError(`public key: no ${what}`);
  return new Uint8Array(Buffer.from(s, 'base64url'));
};

function keyObject(input: SpkiInput): KeyObject {
  let text: string | undefined;
  if (typeof input === 'string') text = input;
  else if (input instanceof Uint8Array) {
    const head = Buffer.from(input.subarray(0, 64)).toString('latin1');
    if (head.trimStart().startsWith('-----BEGIN')) text = Buffer.from(input).toString('utf8');
  } else throw new KeyFormatError('public key: expected PEM text or DER bytes');
  // A private key would also give a public key here; refusing it keeps secrets out of verifiers' files.
  if (text !== undefined && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new KeyFormatError('public key: this is a private key; give the public key (PEM "PUBLIC KEY")');
  try {
    if (text !== undefined) return createPublicKey({ key: text, format: 'pem' });
    return createPublicKey({ key: Buffer.from(input as Uint8Array), format: 'der', type: 'spki' });
  } catch (e) {
    throw new KeyFormatError(`public key: not a PEM or DER SubjectPublicKeyInfo (${(e as Error).message})`, { cause: e });
  }
}

/** Modulus (no leading zeros) and exponent of an RSA key. */
function rsaParts(jwk: JsonWebKey): { modulus: Uint8Array; exponent: number } {
  let modulus = b64url(jwk.n, 'RSA modulus');
  let i = 0;
  while (i < modulus.length - 1 && modulus[i] === 0) i++;
  modulus = modulus.subarray(i);
  const e = b64url(jwk.e, 'RSA exponent');
  if (e.length > 4) throw new KeyFormatError('public key: RSA exponent does not fit a UINT32');
  const exponent = e.reduce((v, b) => v * 256 + b, 0);
  return { modulus: Uint8Array.from(modulus), exponent };
}

function eccParts(jwk: JsonWebKey): { curveID: number; x: Uint8Array; y: Uint8Array } {
  const entry = Object.entries(CURVES).find(([, c]) => c.name === jwk.crv);
  if (!entry) throw new KeyFormatError(`public key: curve ${String(jwk.crv)} is not one a TPM key here uses (${Object.values(CURVES).map((c) => c.name).join(', ')})`);
  return { curveID: Number(entry[0]), x: b64url(jwk.x, 'ECC x'), y: b64url(jwk.y, 'ECC y') };
}

/** Parses the key; says what kind it is. */
function parse(input: SpkiInput): { kind: 'rsa'; jwk: JsonWebKey } | { kind: 'ec'; jwk: JsonWebKey } {
  const key = keyObject(input);
  const kind = key.asymmetricKeyType;
  if (kind !== 'rsa' && kind !== 'ec') throw new KeyFormatError(`public key: key type ${String(kind)}; a TPM key here is RSA or ECC`);
  return { kind, jwk: key.export({ format: 'jwk' }) };
}

/** Part 2 §12.2.3.5: the default exponent 2^16 + 1 is written as 0. */
const tpmExponent = (e: number): number => (e === 65537 ? 0 : e);

/**
 * A restricted signing key's public area from its SubjectPublicKeyInfo, with the scheme and hash
 * the signatures must use (see the module comment: the attributes are an AK's, assumed).
 */
export function signingPublicFromSpki(input: SpkiInput, opts: SigningSchemeOptions = {}): TPMT_PUBLIC {
  const hashAlg = hashAlgOf(opts.hashAlg ?? TPM_ALG.SHA256, 'hashAlg');
  const { kind, jwk } = parse(input);
  if (kind === 'rsa') {
    const scheme = opts.scheme ?? TPM_ALG.RSASSA;
    if (scheme !== TPM_ALG.RSASSA && scheme !== TPM_ALG.RSAPSS) throw new KeyFormatError(`an RSA key signs with RSASSA or RSAPSS, not scheme 0x${scheme.toString(16)}`);
    const { modulus, exponent } = rsaParts(jwk);
    const t = akRsaTemplate(hashAlg);
    const pub: RsaPublic = {
      ...t,
      parameters: { ...t.parameters, scheme: { scheme, details: { hashAlg } }, keyBits: modulus.length * 8, exponent: tpmExponent(exponent) },
      unique: modulus,
    };
    return pub;
  }
  const scheme = opts.scheme ?? TPM_ALG.ECDSA;
  if (scheme !== TPM_ALG.ECDSA) throw new KeyFormatError(`an ECC key here signs with ECDSA, not scheme 0x${scheme.toString(16)}`);
  const { curveID, x, y } = eccParts(jwk);
  const t = akEccTemplate(hashAlg);
  const pub: EccPublic = { ...t, parameters: { ...t.parameters, curveID }, unique: { x, y } };
  return pub;
}

/**
 * The TCG EK (low range: template L-1 RSA 2048 or L-2 ECC NIST P-256) whose key is in the given
 * SubjectPublicKeyInfo. Refuses any other key size, exponent or curve.
 */
export function ekPublicFromSpki(input: SpkiInput): TPMT_PUBLIC {
  const { kind, jwk } = parse(input);
  if (kind === 'rsa') {
    const { modulus, exponent } = rsaParts(jwk);
    if (modulus.length !== 256) throw new KeyFormatError(`EK public key: RSA ${modulus.length * 8} bits; the TCG EK template L-1 is RSA 2048`);
    if (exponent !== 65537) throw new KeyFormatError(`EK public key: RSA exponent ${exponent}; the TCG EK template L-1 uses 65537`);
    return { ...ekRsaTemplate(), unique: modulus };
  }
  const { curveID, x, y } = eccParts(jwk);
  const t = ekEccTemplate();
  if (curveID !== t.parameters.curveID) throw new KeyFormatError(`EK public key: curve ${CURVES[curveID]!.name}; the TCG EK template L-2 is NIST P-256`);
  return { ...t, unique: { x, y } };
}
