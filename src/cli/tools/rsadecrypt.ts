import { parseHandle } from '../args.js';
import { CliError, EXIT, usageError } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
import type { ToolDef } from '../run.js';
import { readSmallInput } from './small-input.js';

interface Opts {
  key: string;
  input: string;
  output: string;
  label?: string;
}

/** The ciphertext of an RSA key offered here is its modulus size: 2048 or 3072 bits. */
const CIPHERTEXT_SIZES = [256, 384];

export const rsadecrypt: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_rsadecrypt',
  summary: "Decrypt RSA-OAEP ciphertext with one of this application's decryption keys.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of an RSA decrypt key (genkey -G rsa --usage decrypt)')
      .requiredOption('-i, --input <file>', 'the ciphertext, exactly the key size (256 or 384 bytes); - for standard input')
      .requiredOption('-o, --output <file>', 'file to write the plaintext to (- for standard output)')
      .option('-l, --label <text>', 'the OAEP label, as tpm2_rsadecrypt -l (openssl: -pkeyopt rsa_oaep_label:HEX of the text and a zero byte)')
      .addHelpText(
        'after',
        "\nThe padding is OAEP with the key's hash (MGF1 with the same hash), fixed when the key was made.\n" +
          '\nExample:\n  $ openssl pkeyutl -encrypt -pubin -inkey key.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -in secret.txt -out secret.enc\n' +
          '  $ eve_tools_tpm2_rsadecrypt -k 0x81010001 -i secret.enc -o secret.txt',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    const out = opts.output;
    ctx.about(handle);
    checkOutputPath(out, 'output file');
    if (out === STDOUT && !ctx.json && ctx.io.stdout.isTTY) throw usageError('refusing to write the plaintext to a terminal; use -o FILE');
    const ciphertext = await readSmallInput(opts.input, 'ciphertext file', 512, ctx.io.stdin);
    if (!CIPHERTEXT_SIZES.includes(ciphertext.length)) {
      const name = opts.input === STDOUT ? 'standard input' : opts.input;
      throw new CliError(`ciphertext file '${name}' has ${ciphertext.length} bytes; an RSA-2048 ciphertext has 256, an RSA-3072 one 384`, EXIT.FILE, 'FILE');
    }
    const client = await ctx.client();
    const plaintext = await client.decrypt(handle, { ciphertext, ...(opts.label !== undefined ? { label: opts.label } : {}) });
    if (out !== STDOUT || !ctx.json) await writeOutput(out, plaintext, 'output file', ctx.io.stdout);
    if (ctx.json) {
      await ctx.printJson({ handle, ...(out === STDOUT ? { plaintext: Buffer.from(plaintext).toString('base64') } : { file: out }), length: plaintext.length });
    }
  },
};
