/**
 * `eve-tpm-verify signature`: a signature over a message, as `eve_tools_tpm2_sign` writes it
 * (plain by default, der, or tss). The message is streamed, never held whole.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Option } from 'commander';
import { CliError, fileError } from '../errors.js';
import { parseSignature, verifySignature, type SignatureFileFormat } from '../../tpm/attest/verify-signature.js';
import type { AttestCheck } from '../../tpm/attest/verify.js';
import { hashOption, inputCheck, loadSigningKey, outcome, printOutcome, readInput } from './input.js';
import { str, type Subcommand } from './subcommand.js';

export const signature: Subcommand = {
  name: 'signature',
  summary: 'verify a signature over a message (eve_tools_tpm2_sign output)',
  configure(cmd) {
    cmd
      .option('--pem <file>', 'the signing key, PEM public key (eve_tools_tpm2_pubgetaik -f)')
      .option('--public <file>', 'the signing key as TPM2B_PUBLIC (tpm2_readpublic -o), instead of --pem')
      .requiredOption('-m, --message <file>', 'the signed message')
      .requiredOption('-s, --signature <file>', 'the signature')
      .option('-g, --hash-algorithm <hash>', "the key's signing hash with --pem: sha1, sha256 (default), sha384, sha512")
      .addOption(new Option('--format <fmt>', 'signature file format').choices(['plain', 'der', 'tss']).default('plain'))
      .option('--json', 'print the report as JSON');
    cmd.addHelpText(
      'after',
      `
With --pem the key is taken as an attestation key (RSASSA for RSA, ECDSA for ECC) with hash -g;
a signature made with another scheme or hash is refused. plain and der are what
eve_tools_tpm2_sign writes by default (RSA signature bytes; DER ECDSA-Sig-Value); tss is a
marshalled TPMT_SIGNATURE (tpm2_sign's default).

Example:
  eve-tpm-verify signature --pem ak.pem -m message.txt -s sign.bin
  eve-tpm-verify signature --pem ak.pem -m message.txt -s sign.tss --format tss --json`,
    );
  },
  async run(o, io, prog) {
    const hashAlg = hashOption(str(o.hashAlgorithm));
    const format = str(o.format) as SignatureFileFormat;
    const messagePath = str(o.message)!;
    const { key, check } = await loadSigningKey({ pem: str(o.pem), public: str(o.public) }, hashAlg, 'signing key');
    const sigBytes = await readInput(str(o.signature)!, 'signature file');
    try {
      const st = await stat(messagePath);
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    } catch (e) {
      throw fileError('cannot read message file', messagePath, e);
    }
    const checks: AttestCheck[] = [];
    if (check) checks.push(check);
    if (key) {
      try {
        const sig = parseSignature(sigBytes, format, key);
        let readError: unknown;
        const stream = createReadStream(messagePath);
        stream.on('error', (e) => (readError = e));
        // A refused scheme returns before reading: close the file either way.
        const r = await verifySignature({ publicKey: key, message: stream, signature: sig }).finally(() => stream.destroy());
        if (readError !== undefined) throw fileError('cannot read message file', messagePath, readError);
        checks.push(...r.checks);
      } catch (e) {
        if (e instanceof CliError) throw e;
        checks.push(inputCheck(e, `signature file ${str(o.signature)!}`));
      }
    }
    return printOutcome(outcome('signature', checks, { format }), o.json === true, io, prog);
  },
};
