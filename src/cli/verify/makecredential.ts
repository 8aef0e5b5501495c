/**
 * `eve-tpm-verify makecredential`: the cloud's half of credential activation. Encrypts a secret
 * to the device's EK so that only that TPM, holding the key named --name, can recover it
 * (eve_tools_tpm2_activatecredential / tpm2_activatecredential), and writes the file
 * tpm2_makecredential writes (0xBADCC0DE header).
 */
import { Option } from 'commander';
import { CliError, EXIT, usageError } from '../errors.js';
import { writeFileAtomic } from '../output.js';
import { makeCredential, writeCredentialFile } from '../../tpm/attest/make-credential.js';
import { ekPublicFromSpki } from '../../tpm/attest/spki.js';
import { DIGEST_SIZE, TPM_ALG } from '../../tpm/constants.js';
import { TPM2B_PUBLIC, type TPMT_PUBLIC } from '../../tpm/structures.js';
import { decode } from '../../tpm/wire/codec.js';
import { parseHexOption, readInput, type VerifyIO } from './input.js';
import { checkName } from './name.js';
import { str, type Subcommand } from './subcommand.js';

/** A refused input: exit 1 with one line (there is no report to print). */
const refused = (m: string): CliError => new CliError(m, EXIT.GENERAL, 'REFUSED');

async function loadEk(o: Record<string, unknown>): Promise<{ ek: TPMT_PUBLIC; from: string }> {
  const pem = str(o.ek);
  const pub = str(o.ekPublic);
  if (pem !== undefined && pub !== undefined) throw usageError('give the EK once: --ek or --ek-public, not both');
  if (pem === undefined && pub === undefined) throw usageError('the EK is required: --ek FILE (PEM public key) or --ek-public FILE (TPM2B_PUBLIC)');
  if (pem !== undefined) {
    const bytes = await readInput(pem, 'EK PEM file');
    try {
      return { ek: ekPublicFromSpki(bytes), from: 'PEM, assuming the TCG EK template (low range)' };
    } catch (e) {
      throw refused(`${pem}: ${(e as Error).message}`);
    }
  }
  const bytes = await readInput(pub!, 'EK public file');
  try {
    return { ek: decode(TPM2B_PUBLIC, bytes), from: 'TPM2B_PUBLIC' };
  } catch (e) {
    throw refused(`${pub!}: not a TPM2B_PUBLIC (${(e as Error).message})`);
  }
}

export const makecredential: Subcommand = {
  name: 'makecredential',
  summary: "encrypt a secret to a device's EK for one of its keys (tpm2_makecredential's file)",
  configure(cmd) {
    cmd
      .option('--ek <file>', "the device's EK, PEM public key (eve_tools_tpm2_ekpub -f)")
      .option('--ek-public <file>', 'the EK as TPM2B_PUBLIC (tpm2_createek -u), instead of --ek')
      .requiredOption('--name <hex>', 'the Name of the key that must be on that TPM (eve_tools_tpm2_genaik --json "name")')
      .requiredOption('-s, --secret <file>', 'the secret: 1 to 32 octets for the TCG EK (the digest size of its nameAlg)')
      .requiredOption('-o, --output <file>', 'where to write the credential (cred.blob)')
      .addOption(new Option('-G, --key-algorithm <alg>', 'the EK type the PEM must be').choices(['rsa', 'ecc']))
      .option('--json', 'print {ok, file, ekType, ekFrom, name, secretSize} as JSON');
    cmd.addHelpText(
      'after',
      `
An EK given as PEM is taken to be the TCG EK of the low range (EK Credential Profile template
L-1 RSA 2048 or L-2 ECC NIST P-256: AES-128-CFB, nameAlg sha256, policy A) — what
eve_tools_tpm2_ekpub and tpm2_createek make. Another EK needs --ek-public. The device recovers
the secret only with that TPM's EK and the key named --name loaded.

Example:
  head -c 32 /dev/urandom > secret.bin
  eve-tpm-verify makecredential --ek ek.pem --name 000b5c… -s secret.bin -o cred.blob
  # device: eve_tools_tpm2_activatecredential -k 0x81010000 -i cred.blob -o secret.out`,
    );
  },
  async run(o, io: VerifyIO) {
    const name = checkName(parseHexOption(str(o.name), '--name'), '--name');
    const out = str(o.output)!;
    const { ek, from } = await loadEk(o);
    const ekType = ek.type === TPM_ALG.RSA ? 'rsa' : ek.type === TPM_ALG.ECC ? 'ecc' : `0x${ek.type.toString(16)}`;
    const want = str(o.keyAlgorithm);
    if (want !== undefined && want !== ekType) throw refused(`the EK is ${ekType}, not ${want} (-G)`);
    const secret = await readInput(str(o.secret)!, 'secret file');
    const max = DIGEST_SIZE[ek.nameAlg];
    if (secret.length === 0 || (max !== undefined && secret.length > max)) {
      throw refused(`secret file: ${secret.length} octets; a credential holds 1 to ${max ?? '?'} (the digest size of the EK's nameAlg)`);
    }
    let file: Uint8Array;
    try {
      file = writeCredentialFile(makeCredential(ek, name, secret));
    } catch (e) {
      throw refused((e as Error).message);
    }
    await writeFileAtomic(out, file, 'credential file');
    const hex = Buffer.from(name).toString('hex');
    if (o.json === true) {
      io.stdout.write(`${JSON.stringify({ ok: true, file: out, ekType, ekFrom: from, name: hex, secretSize: secret.length })}\n`);
    } else {
      io.stdout.write(`credential for ${hex} written to ${out} (EK ${ekType}, from ${from})\n`);
    }
    return EXIT.OK;
  },
};
