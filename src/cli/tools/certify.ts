import type { CertifyResult, DeviceCertifyResult } from '../../service/client/client.js';
import { parseHandle, parseHexBytes } from '../args.js';
import { usageError } from '../errors.js';
import { writeOutput } from '../output.js';
import type { ToolDef } from '../run.js';
import { bindingText, outputFiles } from './attest-output.js';

const isForbidden = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === 'FORBIDDEN';

interface Opts {
  key?: string;
  object: string;
  qualification?: string;
  message: string;
  signature: string;
  bind?: boolean;
  byDevice?: boolean;
  signerPem?: string;
}

export const certify: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_certify',
  summary: "Certify one of this application's keys (as tpm2_certify): by another of its AKs, or --by-device by the device's attestation key.",
  configure(cmd) {
    cmd
      .option('-k, --key <handle>', 'the AK that signs (the certifying key), e.g. 0x81010000; not with --by-device')
      .requiredOption('-c, --object <handle>', 'the key certified, e.g. 0x81010001')
      .option('-q, --qualification <hex>', "the verifier's nonce, hex, 1-64 bytes (required)")
      .requiredOption('-m, --message <file>', 'file to write the certified TPMS_ATTEST to (tpm2_certify -o)')
      .requiredOption('-s, --signature <file>', 'file to write the signature to, a TPMT_SIGNATURE (tpm2_certify -s, tss format)')
      .option('--bind', 'bind to this application: qualifying data = SHA-256("EVE-APP" ‖ 0 ‖ app identity ‖ 0 ‖ nonce)')
      .option('--by-device', "the device's attestation key signs (bound to this application with EVE-APP-KEY); -c is this application's key")
      .option('--signer-pem <file>', "with --by-device: write the device key's public key (PEM) here")
      .addHelpText(
        'after',
        '\nExamples:\n  $ eve_tools_tpm2_certify -k 0x81010000 -c 0x81010001 -q 0a1b2c3d -m attest.msg -s attest.sig' +
          '\n  $ eve_tools_tpm2_certify --by-device -c 0x81010000 -q 0a1b2c3d -m attest.msg -s attest.sig --signer-pem device.pem' +
          '\n  $ eve-tpm-verify certify --pem device.pem -m attest.msg -s attest.sig --name OBJECT_NAME -q 0a1b2c3d --device --app APP',
      );
  },
  async run(opts, ctx) {
    const byDevice = opts.byDevice === true;
    if (byDevice && opts.key !== undefined) throw usageError("-k: with --by-device the device's key signs; leave -k out (-c is the key certified)");
    if (!byDevice && opts.key === undefined) throw usageError('-k: the certifying key is required (or --by-device for the device key)');
    if (!byDevice && opts.signerPem !== undefined) throw usageError('--signer-pem: only with --by-device (the signer is -k; eve_tools_tpm2_pubgetaik writes its key)');
    if (byDevice && opts.bind === true) throw usageError('--bind: a certification --by-device is always bound to this application; leave --bind out');
    const signer = opts.key === undefined ? undefined : parseHandle(opts.key, '-k');
    const object = parseHandle(opts.object, '-c');
    if (opts.qualification === undefined) throw usageError("-q: a nonce is required: give the verifier's nonce in hex");
    const nonce = parseHexBytes(opts.qualification, '-q');
    ctx.about(signer ?? object);
    outputFiles([
      ['-m', opts.message, 'attestation message file'],
      ['-s', opts.signature, 'signature file'],
      ['--signer-pem', opts.signerPem, 'signer public key file'],
    ]);
    const client = await ctx.client();
    const device: DeviceCertifyResult | undefined = byDevice ? await client.deviceCertify(object, { nonce }) : undefined;
    let r: CertifyResult;
    try {
      r = device ?? (await client.certify(signer!, { object, nonce, bind: opts.bind === true }));
    } catch (e) {
      // The service refuses either key with one answer (nothing leaks); say which one it was.
      if (signer !== undefined && isForbidden(e) && (await client.getKey(signer).then(() => true, () => false))) ctx.about(object);
      throw e;
    }
    await writeOutput(opts.message, r.attest, 'attestation message file');
    await writeOutput(opts.signature, r.signature, 'signature file');
    if (device && opts.signerPem !== undefined) {
      await writeOutput(opts.signerPem, device.signerPem.endsWith('\n') ? device.signerPem : `${device.signerPem}\n`, 'signer public key file');
    }
    if (ctx.json) {
      await ctx.printJson({
        signer: r.signer,
        object: r.object,
        objectName: r.objectName,
        attest: Buffer.from(r.attest).toString('base64'),
        signature: Buffer.from(r.signature).toString('base64'),
        nonce: r.nonce,
        qualifyingData: r.qualifyingData,
        ...(r.binding ? { binding: r.binding } : {}),
        ...(device ? { signerName: device.signerName, signerPem: device.signerPem } : {}),
      });
      return;
    }
    await ctx.print(
      `signer: ${r.signer}${device ? ` (the device's attestation key, Name ${device.signerName})` : ''}\n` +
        `object: ${r.object}\nobjectName: ${r.objectName}\nqualifyingData: ${r.qualifyingData}\n` +
        (r.binding ? bindingText(r.binding) : ''),
    );
  },
};
