import { parseHandle } from '../args.js';
import { usageError } from '../errors.js';
import { checkOutputPath } from '../output.js';
import type { ToolDef } from '../run.js';
import { loadX509 } from './x509-loader.js';

interface Opts {
  key: string;
  selfSigned?: boolean;
  subject: string;
  san?: string;
  days: string;
  output: string;
}

export const cert: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_cert',
  summary: "Make a self-signed X.509 certificate (PEM) for one of this application's signing keys, signed in the TPM.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of a signing key: a general one (genkey) or an AK (genaik)')
      .option('--self-signed', 'a self-signed certificate (required: the only kind made here; for a CA, make a request with eve_tools_tpm2_csr)')
      .requiredOption('--subject <dn>', 'subject and issuer, e.g. "CN=app1,O=Acme"')
      .option('--san <list>', 'subjectAltName entries, e.g. DNS:a.example,IP:10.0.0.1 (also email:, URI:)')
      .option('--days <n>', 'validity in days from now, 1 to 36500', '365')
      .requiredOption('-o, --output <file>', 'file to write the certificate to, PEM (- for standard output)')
      .addHelpText(
        'after',
        '\nExample:\n  $ eve_tools_tpm2_cert -k 0x81010001 --self-signed --subject "CN=app1" --san DNS:a.example --days 30 -o cert.pem\n  $ openssl verify -CAfile cert.pem cert.pem',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    ctx.about(handle);
    if (opts.selfSigned !== true) throw usageError('--self-signed is required: only self-signed certificates are made here (for a CA-signed one, make a request with eve_tools_tpm2_csr)');
    if (opts.subject.trim() === '') throw usageError('--subject: empty; give e.g. "CN=app1,O=Acme"');
    const days = /^\s*\d{1,5}\s*$/.test(opts.days) ? Number(opts.days) : Number.NaN;
    if (!(days >= 1 && days <= 36500)) throw usageError(`--days: '${opts.days}' is not a whole number of days from 1 to 36500`);
    checkOutputPath(opts.output, 'certificate file');
    // Loaded here only: the X.509 code (and @peculiar/x509) is for this tool and csr alone.
    const x = await loadX509(ctx.name);
    await x.makeX509({ handle, subject: opts.subject, sans: x.sansOf(opts.san), days }, opts.output, ctx);
  },
};
