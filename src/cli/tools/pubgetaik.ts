import { parseHandle, parsePublicFormat } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { STDOUT } from '../output.js';
import { checkKeyOutput, writeKeyOutput } from './key-output.js';
import type { ToolDef } from '../run.js';

interface Opts {
  key: string;
  output?: string;
  format: string;
}

export const pubgetaik: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_pubgetaik',
  summary: "Write the public part of one of this application's keys to a file (PEM SubjectPublicKeyInfo by default).",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of the key, e.g. 0x81010000')
      .option('-f, --output <file>', 'file to write (- or omitted: standard output)')
      .option('--format <format>', 'pem (SubjectPublicKeyInfo), der (the same, binary) or tss (marshalled TPM2B_PUBLIC)', 'pem')
      .addHelpText('after', '\nExample:\n  $ eve_tools_tpm2_pubgetaik -k 0x81010000 -f ak.pem');
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    const format = parsePublicFormat(opts.format);
    const out = opts.output ?? STDOUT;
    ctx.about(handle);
    checkKeyOutput(out, format, format !== 'pem', 'public key file', ctx);
    const client = await ctx.client();
    const pub = await client.getPublic(handle, format);
    let data: Uint8Array | string;
    if (format === 'pem') {
      if (typeof pub.pem !== 'string') throw new CliError('the TPM service sent no PEM key', EXIT.GENERAL, 'PROTOCOL');
      data = pub.pem.endsWith('\n') ? pub.pem : `${pub.pem}\n`;
    } else {
      if (pub.data === undefined) throw new CliError(`the TPM service sent no ${format} data`, EXIT.GENERAL, 'PROTOCOL');
      data = pub.data;
    }
    await writeKeyOutput(out, data, 'public key file', ctx, { handle, format });
  },
};
