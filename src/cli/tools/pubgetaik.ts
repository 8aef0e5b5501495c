import { basename } from 'node:path';
import { parseHandle, parsePublicFormat } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
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
    checkOutputPath(out, 'public key file');
    // tpm2-tools habit: `-f pem` means the format there; here -f is the output file.
    const named = basename(out).toLowerCase();
    if (out !== STDOUT && ['pem', 'der', 'tss'].includes(named)) {
      ctx.warn(`warning: writing to a file named '${out}'; did you mean --format ${named}?`);
    }
    // With --json and no file, the key goes into the JSON object instead of raw on stdout.
    const toStdout = out === STDOUT && !ctx.json;
    if (toStdout && format !== 'pem' && ctx.io.stdout.isTTY) {
      throw new CliError(`refusing to write binary ${format} data to a terminal; use -f FILE`, EXIT.USAGE, 'USAGE');
    }
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
    if (out !== STDOUT || !ctx.json) await writeOutput(out, data, 'public key file', ctx.io.stdout);
    if (ctx.json) {
      const content =
        out === STDOUT ? (typeof data === 'string' ? { pem: data } : { data: Buffer.from(data).toString('base64') }) : { file: out };
      await ctx.printJson({ handle, format, ...content });
    }
  },
};
