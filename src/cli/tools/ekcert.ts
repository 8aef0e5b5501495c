import { parseKeyType } from '../args.js';
import { CliError, EXIT, usageError } from '../errors.js';
import { STDOUT } from '../output.js';
import { checkKeyOutput, writeKeyOutput } from './key-output.js';
import type { ToolDef } from '../run.js';

interface Opts {
  keyAlgorithm: string;
  output?: string;
  format: string;
}

/** The service's answer for an EK without a certificate (not a route it lacks: that message differs). */
function isAbsent(e: unknown): e is { message: string } {
  const o = e as { status?: unknown; code?: unknown } | null;
  return !!o && o.status === 404 && o.code === 'NOT_FOUND' && !/no such endpoint/i.test((e as Error).message);
}

export const ekcert: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_ekcert',
  summary: "Write the certificate of the TPM's endorsement key, from its NV index (0x01C00002 RSA, 0x01C0000A ECC).",
  configure(cmd) {
    cmd
      .option('-G, --key-algorithm <alg>', 'which EK: 0x1 (rsa) or 0x23 (ecc)', 'rsa')
      .option('-o, --output <file>', 'file to write (- or omitted: standard output)')
      .option('--format <format>', 'der (X.509 DER, as stored) or pem', 'der')
      .addHelpText('after', '\nExample:\n  $ eve_tools_tpm2_ekcert -G rsa -o ek.der\n  $ openssl x509 -inform der -in ek.der -noout -subject -issuer');
  },
  async run(opts, ctx) {
    const type = parseKeyType(opts.keyAlgorithm, '-G');
    const format = opts.format.trim().toLowerCase();
    if (format !== 'der' && format !== 'pem') throw usageError(`--format: unknown certificate format '${opts.format}'; use der or pem`);
    const out = opts.output ?? STDOUT;
    checkKeyOutput(out, format, format === 'der', 'EK certificate file', ctx, 'use -o FILE or --format pem');
    const client = await ctx.client();
    let cert;
    try {
      cert = await client.ekCertificate(type);
    } catch (e) {
      // Many TPMs (swtpm unless provisioned, some boards) have none: say so, and write nothing.
      if (isAbsent(e)) throw new CliError(e.message.trim().replace(/\.$/, ''), EXIT.UNSUPPORTED, 'NOT_FOUND', { type });
      throw e;
    }
    const b64 = Buffer.from(cert.der).toString('base64');
    const data = format === 'der' ? cert.der : `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
    await writeKeyOutput(out, data, 'EK certificate file', ctx, { type: cert.type, index: cert.index, format }, 'der');
  },
};
