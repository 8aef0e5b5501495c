import { parseKeyType, parsePublicFormat } from '../args.js';
import { STDOUT } from '../output.js';
import { checkKeyOutput, writeKeyOutput } from './key-output.js';
import type { ToolDef } from '../run.js';

interface Opts {
  keyAlgorithm: string;
  output?: string;
  format: string;
}

/** The DER of a PEM block (the text between its BEGIN and END lines). */
function pemToDer(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

export const ekpub: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_ekpub',
  summary: "Write the TPM's endorsement key (the TCG default EK) public key: what a verifier encrypts credentials to.",
  configure(cmd) {
    cmd
      .option('-G, --key-algorithm <alg>', 'which EK: 0x1 (rsa, RSA-2048) or 0x23 (ecc, NIST P-256)', 'rsa')
      .option('-f, --output <file>', 'file to write (- or omitted: standard output)')
      .option('--format <format>', 'pem (SubjectPublicKeyInfo), der (the same, binary) or tss (marshalled TPM2B_PUBLIC, as tpm2_createek -u)', 'pem')
      .addHelpText('after', '\nExample:\n  $ eve_tools_tpm2_ekpub -G rsa -f ek.pem\n  $ tpm2_makecredential -T none -u ek.pem -G rsa -n AK_NAME -s secret.bin -o cred.blob');
  },
  async run(opts, ctx) {
    const type = parseKeyType(opts.keyAlgorithm, '-G');
    const format = parsePublicFormat(opts.format);
    const out = opts.output ?? STDOUT;
    checkKeyOutput(out, format, format !== 'pem', 'EK public key file', ctx);
    const client = await ctx.client();
    const ek = await client.ekPublic(type);
    const data: Uint8Array | string = format === 'pem' ? (ek.pem.endsWith('\n') ? ek.pem : `${ek.pem}\n`) : format === 'der' ? pemToDer(ek.pem) : ek.public;
    await writeKeyOutput(out, data, 'EK public key file', ctx, { type: ek.type, name: ek.name, format });
  },
};
