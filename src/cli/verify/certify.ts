/**
 * `eve-tpm-verify certify`: a certification (TPM2_Certify) — the signer's key says an object
 * with the given Name is loaded in the same TPM. `--device --app ID`: the device's key
 * certified the app's key (qualifying data bound with "EVE-APP-KEY"); `--app ID` alone: the
 * app's own AK certified with --bind ("EVE-APP").
 */
import { usageError } from '../errors.js';
import { verifyCertify, type AttestCheck } from '../../tpm/attest/verify.js';
import { bindingNote, expectedQualifyingData } from './binding.js';
import { hashOption, loadSigningKey, outcome, parseHexOption, printOutcome, readInput } from './input.js';
import { checkName } from './name.js';
import { str, type Subcommand } from './subcommand.js';

export const certify: Subcommand = {
  name: 'certify',
  summary: 'verify a key certification (tpm2_certify / eve_tools_tpm2_certify output)',
  configure(cmd) {
    cmd
      .option('--pem <file>', "the signer's PEM public key (the app's AK, or the device's with --device)")
      .option('--public <file>', "the signer's TPM2B_PUBLIC, instead of --pem")
      .requiredOption('-m, --message <file>', 'attest.msg: the attestation (TPMS_ATTEST) the TPM signed')
      .requiredOption('-s, --signature <file>', 'attest.sig: the signature (TPMT_SIGNATURE)')
      .option('--name <hex>', 'the Name of the key that should be certified (required)')
      .option('-q, --qualification <hex>', 'the nonce the verifier gave (required)')
      .option('--device', "the signer is the device's attestation key (eve_tools_tpm2_certify --by-device); needs --app")
      .option('--app <id>', 'the app identity the attestation is bound to')
      .option('-g, --hash-algorithm <hash>', "the signer's hash with --pem: sha1, sha256 (default), sha384, sha512")
      .option('--json', 'print the report as JSON');
    cmd.addHelpText(
      'after',
      `
Checks: the signature (with the signer's scheme), TPM_GENERATED_VALUE, the attestation type,
the nonce (extraData; with --app its bound form, "EVE-APP-KEY" with --device) and the
certified Name.

Example:
  eve-tpm-verify certify --pem ak.pem -m attest.msg -s attest.sig --name 000b5c… -q 0badc0de
  eve-tpm-verify certify --pem device-ak.pem --device --app app-1 -m attest.msg -s attest.sig \\
    --name 000b5c… -q 0badc0de --json`,
    );
  },
  async run(o, io, prog) {
    const hashAlg = hashOption(str(o.hashAlgorithm));
    const app = str(o.app);
    if (o.device === true && app === undefined) throw usageError('--device needs --app ID: a device certification is always bound to the app');
    const objectName = checkName(parseHexOption(str(o.name), '--name (the certified key\'s Name)'), '--name');
    const expected = expectedQualifyingData(str(o.qualification), app, o.device === true ? 'EVE-APP-KEY' : 'EVE-APP');
    const { key, check } = await loadSigningKey({ pem: str(o.pem), public: str(o.public) }, hashAlg, 'signing key');
    const attestBytes = await readInput(str(o.message)!, 'attestation file');
    const signature = await readInput(str(o.signature)!, 'attestation signature file');
    const checks: AttestCheck[] = [];
    if (check) checks.push(check);
    const r = verifyCertify({ signerPublic: key!, attestBytes, signature, objectName, nonce: expected.qualifyingData });
    checks.push(...r.checks);
    const extra: Record<string, unknown> = {};
    if (expected.binding) extra.binding = expected.binding;
    if (r.attest) extra.attest = r.attest;
    return printOutcome(outcome('certify', checks, extra, bindingNote(expected)), o.json === true, io, prog);
  },
};
