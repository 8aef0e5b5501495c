import { hashAlgId, parseHandle, parseHash, parseHexBytes } from '../args.js';
import { CliError, EXIT, usageError } from '../errors.js';
import { writeOutput } from '../output.js';
import { parsePcrSelectionText, pcrJson, pcrsOut, pcrText } from '../pcrs.js';
import type { ToolDef } from '../run.js';
import { bindingText, outputFiles } from './attest-output.js';

interface Opts {
  key: string;
  pcrList: string;
  qualification?: string;
  message: string;
  signature: string;
  pcr?: string;
  hashAlgorithm?: string;
  bind?: boolean;
}

export const quote: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_quote',
  summary: "Quote PCRs with an AK of this application (as tpm2_quote); tpm2_checkquote verifies the files.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of the AK, e.g. 0x81010000')
      .requiredOption('-l, --pcr-list <selection>', 'PCRs to quote, as tpm2_quote -l: sha256:0,1,2[+sha1:0]')
      .option('-q, --qualification <hex>', "the verifier's nonce, hex, 1-64 bytes (required: no nonce, no quote)")
      .requiredOption('-m, --message <file>', 'file to write the quoted TPMS_ATTEST to (tpm2_quote -m)')
      .requiredOption('-s, --signature <file>', 'file to write the signature to, a TPMT_SIGNATURE (tpm2_quote -s)')
      .option('-o, --pcr <file>', 'file to write the PCR values to, pcrs.out (tpm2_quote -o)')
      .option('-g, --hash-algorithm <alg>', "hash of the key's signing scheme: 0x4 (sha1), 0xB (sha256), 0xC (sha384), 0xD (sha512); checked against the key")
      .option('--bind', 'bind the quote to this application: qualifying data = SHA-256("EVE-APP" ‖ 0 ‖ app identity ‖ 0 ‖ nonce)')
      .addHelpText(
        'after',
        '\nExample:\n  $ eve_tools_tpm2_quote -k 0x81010000 -l sha256:0,1,2 -q 0a1b2c3d -m quote.msg -s quote.sig -o pcrs.out -g sha256' +
          '\n  $ tpm2_checkquote -u ak.pem -m quote.msg -s quote.sig -f pcrs.out -g sha256 -q 0a1b2c3d' +
          '\n  With --bind, give tpm2_checkquote -q the qualifyingData printed (eve-tpm-verify quote --app recomputes it).',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    const pcrs = parsePcrSelectionText(opts.pcrList, '-l');
    if (opts.qualification === undefined) throw usageError("-q: a nonce is required (no nonce, no quote): give the verifier's nonce in hex");
    const nonce = parseHexBytes(opts.qualification, '-q');
    const wanted = opts.hashAlgorithm !== undefined ? parseHash(opts.hashAlgorithm, '-g') : undefined;
    ctx.about(handle);
    outputFiles([
      ['-m', opts.message, 'quote message file'],
      ['-s', opts.signature, 'quote signature file'],
      ['-o', opts.pcr, 'PCR file'],
    ]);
    const client = await ctx.client();
    if (wanted !== undefined) {
      // An AK's scheme fixes its hash; tpm2_quote -g must name it.
      const key = await client.getKey(handle);
      if (key.hashAlg !== wanted) {
        throw new CliError(
          `-g: key ${handle} signs with ${key.hashAlg} only (an AK's hash is fixed when it is created), not ${wanted} (0x${hashAlgId(wanted).toString(16).toUpperCase()})`,
          EXIT.UNSUPPORTED,
          'UNSUPPORTED',
          { keyHashAlg: key.hashAlg, hashAlg: wanted },
        );
      }
    }
    const q = await client.quote(handle, { pcrs, nonce, bind: opts.bind === true });
    await writeOutput(opts.message, q.attest, 'quote message file');
    await writeOutput(opts.signature, q.signature, 'quote signature file');
    if (opts.pcr !== undefined) await writeOutput(opts.pcr, pcrsOut(q.pcrs), 'PCR file');
    if (ctx.json) {
      await ctx.printJson({
        handle,
        signer: q.signer,
        selection: q.selection,
        attest: Buffer.from(q.attest).toString('base64'),
        signature: Buffer.from(q.signature).toString('base64'),
        nonce: q.nonce,
        qualifyingData: q.qualifyingData,
        ...(q.binding ? { binding: q.binding } : {}),
        pcrs: pcrJson(q.pcrs),
      });
      return;
    }
    // tpm2_quote's own summary, shortened: the verifier's inputs.
    await ctx.print(
      `quoted: ${Buffer.from(q.attest).toString('hex')}\n` +
        `signature: ${Buffer.from(q.signature).toString('hex')}\n` +
        `pcrs:\n${pcrText(q.pcrs, '')}` +
        `qualifyingData: ${q.qualifyingData}\n` +
        (q.binding ? bindingText(q.binding) : ''),
    );
  },
};
