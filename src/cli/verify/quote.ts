/**
 * `eve-tpm-verify quote`: a quote as tpm2_quote (or eve_tools_tpm2_quote) writes it — quote.msg
 * (TPMS_ATTEST), quote.sig (TPMT_SIGNATURE) and pcrs.out — against the AK, the verifier's nonce
 * (or its app-bound form) and the PCR values of pcrs.out or an expected PCR digest.
 */
import { usageError } from '../errors.js';
import { formatPcrSelection, readPcrsOut, fromPcrSelection } from '../../tpm/attest/formats.js';
import { verifyQuote, type AttestCheck, type PcrValues } from '../../tpm/attest/verify.js';
import { TPM_ST_ATTEST, type TPMS_PCR_SELECTION } from '../../tpm/structures.js';
import { bindingNote, expectedQualifyingData } from './binding.js';
import { hashOption, inputCheck, loadSigningKey, outcome, parseHexOption, printOutcome, readInput } from './input.js';
import { str, type Subcommand } from './subcommand.js';

/** pcrs.out's values keyed by bank and PCR, in the file's selection order. */
function valuesOf(selection: TPMS_PCR_SELECTION[], values: Uint8Array[]): PcrValues {
  const out: Record<number, Record<number, Uint8Array>> = {};
  let i = 0;
  for (const bank of fromPcrSelection(selection)) {
    const m = (out[bank.hash] ??= {});
    for (const pcr of bank.pcrs) m[pcr] = values[i++]!;
  }
  return out;
}

export const quote: Subcommand = {
  name: 'quote',
  summary: 'verify a TPM quote (tpm2_quote / eve_tools_tpm2_quote output)',
  configure(cmd) {
    cmd
      .option('--pem <file>', "the AK's PEM public key")
      .option('--public <file>', "the AK's TPM2B_PUBLIC (tpm2_readpublic -o / tpm2_createak -u), instead of --pem")
      .requiredOption('-m, --message <file>', 'quote.msg: the attestation (TPMS_ATTEST) the TPM signed')
      .requiredOption('-s, --signature <file>', 'quote.sig: the signature (TPMT_SIGNATURE)')
      .option('-q, --qualification <hex>', 'the nonce the verifier gave (required)')
      .option('-f, --pcr <file>', 'pcrs.out (tpm2_quote -o): the PCR values the digest must be made of')
      .option('--pcr-digest <hex>', 'the expected PCR digest, instead of -f')
      .option('--app <id>', 'the quote is app-bound (--bind): expect SHA-256("EVE-APP" ‖ 0 ‖ ID ‖ 0 ‖ nonce)')
      .option('-g, --hash-algorithm <hash>', "the AK's signing hash with --pem: sha1, sha256 (default), sha384, sha512")
      .option('--json', 'print the report as JSON');
    cmd.addHelpText(
      'after',
      `
Checks: the signature (with the AK's scheme), TPM_GENERATED_VALUE, the attestation type, the
nonce (extraData), that pcrs.out selects exactly the PCRs quoted, and the PCR digest.
--app ID is the app identity the service returned with a bound quote (tenant id, or
id/cid=N); the report names the identity checked.

Example:
  eve-tpm-verify quote --pem ak.pem -m quote.msg -s quote.sig -q 0badc0de -f pcrs.out
  eve-tpm-verify quote --pem ak.pem -m quote.msg -s quote.sig -q 0badc0de -f pcrs.out --app app-1 --json`,
    );
  },
  async run(o, io, prog) {
    const hashAlg = hashOption(str(o.hashAlgorithm));
    const pcrFile = str(o.pcr);
    const digestHex = str(o.pcrDigest);
    if (pcrFile === undefined && digestHex === undefined) throw usageError('the PCRs to check are required: -f pcrs.out or --pcr-digest HEX');
    if (pcrFile !== undefined && digestHex !== undefined) throw usageError('give -f pcrs.out or --pcr-digest, not both');
    const expected = expectedQualifyingData(str(o.qualification), str(o.app), 'EVE-APP');
    const pcrDigest = digestHex !== undefined ? parseHexOption(digestHex, '--pcr-digest') : undefined;

    const { key, check } = await loadSigningKey({ pem: str(o.pem), public: str(o.public) }, hashAlg, 'AK');
    const attestBytes = await readInput(str(o.message)!, 'quote message file');
    const signature = await readInput(str(o.signature)!, 'quote signature file');
    const pcrBytes = pcrFile !== undefined ? await readInput(pcrFile, 'PCR file') : undefined;

    const checks: AttestCheck[] = [];
    if (check) checks.push(check);
    let file: { selection: TPMS_PCR_SELECTION[]; values: Uint8Array[] } | undefined;
    if (pcrBytes) {
      try {
        file = readPcrsOut(pcrBytes);
      } catch (e) {
        checks.push(inputCheck(e, pcrFile!));
      }
    }
    const r = verifyQuote({
      // A missing key or PCR file is reported by verifyQuote too (fail closed).
      akPublic: key!,
      attestBytes,
      signature,
      nonce: expected.qualifyingData,
      ...(pcrDigest ? { pcrDigest } : {}),
      ...(file ? { pcrValues: valuesOf(file.selection, file.values) } : {}),
    });
    checks.push(...r.checks);
    const extra: Record<string, unknown> = {};
    if (expected.binding) extra.binding = expected.binding;
    if (file && r.attest?.type === TPM_ST_ATTEST.QUOTE) {
      // tpm2_checkquote's rule: the file's selection is the quote's (same banks, order and PCRs).
      const quoted = formatPcrSelection(r.attest.attested.pcrSelect);
      const given = formatPcrSelection(file.selection);
      checks.push({ name: 'pcrSelection', ok: quoted === given, detail: quoted === given ? `${pcrFile} selects ${given}, as the quote does` : `${pcrFile} selects ${given}, the quote ${quoted}` });
      extra.pcrSelection = quoted;
    }
    if (r.attest) extra.attest = r.attest;
    return printOutcome(outcome('quote', checks, extra, bindingNote(expected)), o.json === true, io, prog);
  },
};
