import { CliError, EXIT, usageError } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
import { parsePcrSelectionText, pcrJson, pcrsOut, pcrText, pcrValuesOut } from '../pcrs.js';
import type { ToolDef } from '../run.js';

interface Opts {
  /** The positional SELECTION, put here by the preAction hook. */
  selection?: string;
  output?: string;
  pcrsFormat: string;
}

export const pcrread: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_pcrread',
  summary: 'Read PCR values (as tpm2_pcrread); default every allocated bank, PCRs 0-23.',
  configure(cmd) {
    cmd
      .usage('[SELECTION] [options]')
      .option('-o, --output <file>', 'also write the values to this file (see -F)')
      .option('-F, --pcrs-format <format>', "format of -o: serialized (pcrs.out as tpm2_quote -o writes it, what tpm2_checkquote -f reads) or values (the values one after another)", 'serialized')
      .addHelpText(
        'after',
        '\nSELECTION is as tpm2_pcrread takes it: BANK:PCR,PCR,...[+BANK:...], e.g. sha256:0,1,2+sha1:0 (PCRs decimal or 0x hex, or all).' +
          '\n\nExample:\n  $ eve_tools_tpm2_pcrread sha256:0,1,2 -o pcrs.out\n    sha256:\n      0 : 0x0000…',
      );
    // One optional positional argument. Declared ones would change the action's arguments
    // (run.ts passes the options first), so it is taken from the leftover arguments instead.
    cmd.allowExcessArguments(true).hook('preAction', (c) => {
      if (c.args.length > 1) throw usageError(`one SELECTION at most, got ${c.args.length}: ${c.args.join(' ')} (see --help)`);
      if (c.args.length === 1) c.setOptionValue('selection', c.args[0]);
    });
  },
  async run(opts, ctx) {
    const selection = opts.selection === undefined ? undefined : parsePcrSelectionText(opts.selection, 'SELECTION');
    const format = opts.pcrsFormat.trim().toLowerCase();
    if (format !== 'serialized' && format !== 'values') throw usageError(`-F: unknown PCR file format '${opts.pcrsFormat}'; use serialized or values`);
    const out = opts.output;
    if (out !== undefined) {
      checkOutputPath(out, 'PCR file');
      if (out === STDOUT) throw usageError('-o: the text goes to standard output; give a file');
    }
    const client = await ctx.client();
    const r = await client.readPcrs(selection);
    if (r.pcrs.length === 0) throw new CliError(`the TPM has none of the PCRs selected (${r.selection})`, EXIT.UNSUPPORTED, 'UNSUPPORTED');
    if (out !== undefined) await writeOutput(out, format === 'values' ? pcrValuesOut(r.pcrs) : pcrsOut(r.pcrs), 'PCR file');
    if (ctx.json) {
      await ctx.printJson({ selection: r.selection, updateCounter: r.updateCounter, pcrs: pcrJson(r.pcrs), ...(out !== undefined ? { file: out, format } : {}) });
    } else {
      await ctx.print(pcrText(r.pcrs));
    }
  },
};
