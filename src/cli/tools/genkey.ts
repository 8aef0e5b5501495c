import { parseHash, parseKeyType } from '../args.js';
import { usageError } from '../errors.js';
import type { ToolDef } from '../run.js';
import { ECC_CURVES, GENERAL_SCHEMES, KEY_SCHEMES, KEY_USAGES, RSA_BITS, type EccCurve, type KeyScheme, type KeyType, type KeyUsage, type RsaBits } from '../../service/protocol/vocabulary.js';

interface Opts {
  keyAlgorithm: string;
  usage?: string;
  scheme?: string;
  bits?: string;
  curve?: string;
  hashAlgorithm?: string;
}

/** What genkey asks the service for, checked here by the service's own rules (GENERAL_SCHEMES). */
export interface GeneralKeySpec {
  type: KeyType;
  usage: KeyUsage;
  scheme: KeyScheme;
  bits?: RsaBits;
  curve?: EccCurve;
}

const list = (xs: readonly (string | number)[]): string => xs.join(', ');

/** The curves by the names openssl and tpm2-tools also use. */
const CURVE_NAMES: Readonly<Record<string, EccCurve>> = {
  'p-256': 'P-256',
  p256: 'P-256',
  nistp256: 'P-256',
  prime256v1: 'P-256',
  secp256r1: 'P-256',
  ecc256: 'P-256',
  'p-384': 'P-384',
  p384: 'P-384',
  nistp384: 'P-384',
  secp384r1: 'P-384',
  ecc384: 'P-384',
};

/** The usage a scheme implies: oaep and ecdh decrypt, the others sign. */
const usageOf = (s: KeyScheme): KeyUsage => (GENERAL_SCHEMES.rsa.decrypt.includes(s) || GENERAL_SCHEMES.ecc.decrypt.includes(s) ? 'decrypt' : 'sign');

/** The flags' combination, or a usage error naming what does not fit; no request is made before this. */
export function generalKeySpec(o: { type: KeyType; usage?: string; scheme?: string; bits?: string; curve?: string }): GeneralKeySpec {
  const scheme = o.scheme?.trim().toLowerCase();
  if (scheme !== undefined && !(KEY_SCHEMES as readonly string[]).includes(scheme)) throw usageError(`--scheme: unknown scheme '${o.scheme}'; use one of ${list(KEY_SCHEMES)}`);
  const given = o.usage?.trim().toLowerCase();
  if (given !== undefined && !(KEY_USAGES as readonly string[]).includes(given)) throw usageError(`--usage: unknown usage '${o.usage}'; use sign or decrypt`);
  // A scheme alone says the usage (--scheme oaep is a decrypt key).
  const usage = (given ?? (scheme !== undefined ? usageOf(scheme as KeyScheme) : 'sign')) as KeyUsage;
  const allowed = GENERAL_SCHEMES[o.type][usage];
  if (scheme !== undefined && !allowed.includes(scheme as KeyScheme)) {
    throw usageError(`--scheme ${scheme} does not fit a${o.type === 'rsa' ? 'n RSA' : 'n ECC'} ${usage} key; use ${allowed.join(' or ')}`);
  }
  const spec: GeneralKeySpec = { type: o.type, usage, scheme: (scheme as KeyScheme | undefined) ?? allowed[0]! };
  if (o.bits !== undefined) {
    if (o.type !== 'rsa') throw usageError('--bits is for RSA keys; an ECC key takes --curve');
    const bits = Number(o.bits.trim());
    if (!(RSA_BITS as readonly number[]).includes(bits)) throw usageError(`--bits: '${o.bits}' is not a key size offered here; use ${list(RSA_BITS)}`);
    spec.bits = bits as RsaBits;
  }
  if (o.curve !== undefined) {
    if (o.type !== 'ecc') throw usageError('--curve is for ECC keys; an RSA key takes --bits');
    const curve = CURVE_NAMES[o.curve.trim().toLowerCase()];
    if (!curve) throw usageError(`--curve: unknown curve '${o.curve}'; use ${list(ECC_CURVES)}`);
    spec.curve = curve;
  }
  return spec;
}

export const genkey: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_genkey',
  summary: 'Create a general (non-restricted) signing or decryption key in the TPM and print its handle.',
  configure(cmd) {
    cmd
      .requiredOption('-G, --key-algorithm <alg>', 'key type, TPM_ALG_ID or name: rsa (0x1) or ecc (0x23)')
      .option('--usage <usage>', 'sign (default) or decrypt; implied by --scheme')
      .option('--scheme <scheme>', "the key's fixed scheme: rsassa (RSA default), rsapss, ecdsa (ECC default) sign; oaep (RSA), ecdh (ECC) decrypt")
      .option('--bits <bits>', 'RSA modulus size: 2048 (default) or 3072')
      .option('--curve <curve>', 'ECC curve: P-256 (default) or P-384')
      .option('-g, --hash-algorithm <alg>', "hash fixed in the key's scheme: 0x4 (sha1), 0xB (sha256, the default), 0xC (sha384), 0xD (sha512)")
      .addHelpText(
        'after',
        '\nThe key is fixed to this TPM (never exportable) and its scheme is fixed when it is made:\n' +
          'eve_tools_tpm2_sign signs with it (-d for a digest), eve_tools_tpm2_rsadecrypt (oaep) and\n' +
          'eve_tools_tpm2_ecdh (ecdh) use decrypt keys.\n\nExamples:\n' +
          '  $ eve_tools_tpm2_genkey -G rsa --scheme rsapss\n' +
          '  Key generated at persistent handle 0x81010001 (general rsa 2048, sign, rsapss, sha256)\n' +
          '  $ eve_tools_tpm2_genkey -G ecc --usage decrypt --curve P-384 -g sha384',
      );
  },
  async run(opts, ctx) {
    const type = parseKeyType(opts.keyAlgorithm, '-G');
    const spec = generalKeySpec({ type, ...pick(opts) });
    const hashAlg = opts.hashAlgorithm !== undefined ? parseHash(opts.hashAlgorithm, '-g') : undefined;
    const client = await ctx.client();
    const key = await client.createKey({ kind: 'general', ...spec, ...(hashAlg ? { hashAlg } : {}) });
    const size = key.type === 'rsa' ? String(key.bits ?? spec.bits ?? 2048) : (key.curve ?? spec.curve ?? 'P-256');
    if (ctx.json) {
      await ctx.printJson({
        handle: key.handle,
        kind: key.kind,
        type: key.type,
        usage: key.usage,
        scheme: key.scheme,
        ...(key.type === 'rsa' ? { bits: Number(size) } : { curve: size }),
        hashAlg: key.hashAlg,
        name: key.name,
        createdAt: key.createdAt,
      });
    } else {
      // One stable line (docs/TOOLS.md): the handle first, as genaik's, then what the key is.
      await ctx.print(`Key generated at persistent handle ${key.handle} (${key.kind} ${key.type} ${size}, ${key.usage}, ${key.scheme}, ${key.hashAlg})`);
    }
  },
};

function pick(o: Opts): { usage?: string; scheme?: string; bits?: string; curve?: string } {
  const out: { usage?: string; scheme?: string; bits?: string; curve?: string } = {};
  if (o.usage !== undefined) out.usage = o.usage;
  if (o.scheme !== undefined) out.scheme = o.scheme;
  if (o.bits !== undefined) out.bits = o.bits;
  if (o.curve !== undefined) out.curve = o.curve;
  return out;
}
