import { parseHandle } from '../args.js';
import { usageError } from '../errors.js';
import { checkOutputPath } from '../output.js';
import type { ToolDef } from '../run.js';
import { loadX509 } from './x509-loader.js';

interface Opts {
  key: string;
  subject: string;
  san?: string;
  output: string;
}

export const csr: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_csr',
  summary: "Make a certificate request (PKCS#10, PEM) for one of this application's signing keys, signed in the TPM.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of a signing key: a general one (genkey) or an AK (genaik)')
      .requiredOption('--subject <dn>', 'the subject, e.g. "CN=app1,O=Acme"')
      .option('--san <list>', 'subjectAltName entries, e.g. DNS:a.example,IP:10.0.0.1 (also email:, URI:)')
      .requiredOption('-o, --output <file>', 'file to write the request to, PEM (- for standard output)')
      .addHelpText(
        'after',
        "\nThe request is signed with the key's own scheme and hash; its public key is pubgetaik's.\n" +
          '\nExample:\n  $ eve_tools_tpm2_csr -k 0x81010001 --subject "CN=app1,O=Acme" --san DNS:a.example,IP:10.0.0.1 -o req.pem\n  $ openssl req -in req.pem -verify -noout',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    ctx.about(handle);
    if (opts.subject.trim() === '') throw usageError('--subject: empty; give e.g. "CN=app1,O=Acme"');
    checkOutputPath(opts.output, 'request file');
    // Loaded here only: the X.509 code (and @peculiar/x509) is for this tool and cert alone.
    const x = await loadX509(ctx.name);
    await x.makeX509({ handle, subject: opts.subject, sans: x.sansOf(opts.san) }, opts.output, ctx);
  },
};
