import { open, type FileHandle } from 'node:fs/promises';
import { parseHandle } from '../args.js';
import { readCredentialFile } from '../../tpm/attest/credential-file.js';
import { CliError, EXIT, fileError, usageError } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
import type { ToolDef } from '../run.js';

interface Opts {
  key: string;
  credentialBlob: string;
  output: string;
}

/** Larger than any credential (two TPM2B of at most a few hundred bytes): refuse before reading it all. */
const MAX_CREDENTIAL_FILE = 64 * 1024;

async function readCredential(path: string): Promise<{ credentialBlob: Uint8Array; secret: Uint8Array }> {
  let bytes: Buffer;
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.size > MAX_CREDENTIAL_FILE) throw new CliError(`credential file '${path}' is ${st.size} bytes: not a file tpm2_makecredential writes`, EXIT.FILE, 'FILE');
    bytes = await fh.readFile();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw fileError('cannot read credential file', path, e);
  } finally {
    await fh?.close().catch(() => {});
  }
  try {
    return readCredentialFile(new Uint8Array(bytes));
  } catch (e) {
    throw new CliError(`'${path}' is not a credential file from tpm2_makecredential: ${(e as Error).message.replace(/^credential file: /, '')}`, EXIT.FILE, 'FILE');
  }
}

export const activatecredential: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_activatecredential',
  summary: "Recover the secret of a credential made for one of this application's AKs (tpm2_makecredential's file), with the TPM's EK.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of the AK the credential was made for (its Name), e.g. 0x81010000')
      .requiredOption('-i, --credential-blob <file>', 'the credential, as tpm2_makecredential -o (or eve-tpm-verify makecredential) writes it')
      .requiredOption('-o, --output <file>', 'file to write the recovered secret to')
      .addHelpText(
        'after',
        '\nExample:\n  $ tpm2_makecredential -T none -u ek.pem -G rsa -n AK_NAME -s secret.bin -o cred.blob\n  $ eve_tools_tpm2_activatecredential -k 0x81010000 -i cred.blob -o secret.out',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    ctx.about(handle);
    const out = opts.output;
    checkOutputPath(out, 'secret file');
    if (out === STDOUT && !ctx.json && ctx.io.stdout.isTTY) throw usageError('refusing to write a binary secret to a terminal; use -o FILE');
    // A bad file is reported before anything is asked of the service.
    const cred = await readCredential(opts.credentialBlob);
    const client = await ctx.client();
    const secret = await client.activateCredential(handle, cred);
    if (out !== STDOUT || !ctx.json) await writeOutput(out, secret, 'secret file', ctx.io.stdout);
    if (ctx.json) {
      await ctx.printJson({ handle, ...(out === STDOUT ? { secret: Buffer.from(secret).toString('base64') } : { file: out }), secretLength: secret.length });
    }
  },
};
