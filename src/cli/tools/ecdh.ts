import { createPublicKey, type KeyObject } from 'node:crypto';
import { parseHandle } from '../args.js';
import { CliError, EXIT, usageError } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
import type { ToolDef } from '../run.js';
import { readSmallInput } from './small-input.js';

interface Opts {
  key: string;
  peer: string;
  output: string;
}

/** openssl's names of the curves offered here. */
const CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384' };

/** The peer's public key, PEM or DER SubjectPublicKeyInfo, as PEM; anything else is exit 6 naming the file. */
export function peerPem(data: Uint8Array, file: string): string {
  const bad = (why: string): CliError => new CliError(`peer key file '${file}' ${why}`, EXIT.FILE, 'FILE');
  let key: KeyObject;
  try {
    const text = Buffer.from(data).toString('latin1');
    key = text.includes('-----BEGIN') ? createPublicKey({ key: text, format: 'pem' }) : createPublicKey({ key: Buffer.from(data), format: 'der', type: 'spki' });
  } catch {
    throw bad('is not a public key (PEM "BEGIN PUBLIC KEY" or DER SubjectPublicKeyInfo)');
  }
  if (key.asymmetricKeyType !== 'ec') throw bad(`holds a${key.asymmetricKeyType === 'rsa' ? 'n RSA' : ` ${key.asymmetricKeyType ?? 'non-EC'}`} key; ECDH needs an EC public key`);
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (!curve || !CURVES[curve]) throw bad(`is on curve ${curve ?? '(unnamed)'}; keys here are on P-256 or P-384`);
  return key.export({ type: 'spki', format: 'pem' }) as string;
}

export const ecdh: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_ecdh',
  summary: "Compute an ECDH shared secret (Z) with one of this application's ECC decryption keys and a peer's public key.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of an ECC decrypt key (genkey -G ecc --usage decrypt)')
      .requiredOption('--peer <file>', "the peer's public key on the key's curve: PEM or DER SubjectPublicKeyInfo")
      .requiredOption('-o, --output <file>', 'file to write Z to, the shared x coordinate (- for standard output)')
      .addHelpText(
        'after',
        '\nZ is what openssl pkeyutl -derive gives on the other side (TPM2_ECDH_ZGen); derive keys from it with a KDF.\n' +
          '\nExample:\n  $ eve_tools_tpm2_pubgetaik -k 0x81010002 -f mine.pem\n  $ eve_tools_tpm2_ecdh -k 0x81010002 --peer peer.pem -o z.bin\n' +
          '  $ openssl pkeyutl -derive -inkey peer.key -peerkey mine.pem -out z2.bin   # the peer: the same bytes',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    const out = opts.output;
    ctx.about(handle);
    if (opts.peer === STDOUT) throw usageError('--peer: give a file (standard input is not read here)');
    checkOutputPath(out, 'output file');
    if (out === STDOUT && !ctx.json && ctx.io.stdout.isTTY) throw usageError('refusing to write the shared secret to a terminal; use -o FILE');
    const peer = peerPem(await readSmallInput(opts.peer, 'peer key file', 16 * 1024, ctx.io.stdin), opts.peer);
    const client = await ctx.client();
    const z = await client.ecdh(handle, { peer });
    if (out !== STDOUT || !ctx.json) await writeOutput(out, z, 'output file', ctx.io.stdout);
    if (ctx.json) await ctx.printJson({ handle, ...(out === STDOUT ? { z: Buffer.from(z).toString('base64') } : { file: out }), length: z.length });
  },
};
