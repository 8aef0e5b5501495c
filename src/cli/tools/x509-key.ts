/**
 * What csr and cert share: the key's signer, whose signatures the service makes (sign with the
 * message: the service hashes, through the TPM's ticket for an AK), and the writing of the PEM.
 * Loaded only by those two tools (dynamic import): it pulls in the library's structures and,
 * when a request is built, @peculiar/x509 — the other tools never load either.
 */
import { TPM_ALG } from '../../tpm/constants.js';
import { TPM2B_PUBLIC } from '../../tpm/structures.js';
import { decode } from '../../tpm/wire/codec.js';
import { createSigner, SignerError, type TpmSigner } from '../../tpm/x509/signer.js';
import { X509InputError, createCsr, createSelfSignedCertificate, parseSubjectAltNames, type SubjectAltName, type X509Output } from '../../tpm/x509/csr.js';
import type { HashName } from '../../service/protocol/vocabulary.js';
import { CliError, EXIT, usageError } from '../errors.js';
import { STDOUT, writeOutput } from '../output.js';
import type { ToolContext } from '../run.js';

const HASH_NAME: Readonly<Record<number, HashName>> = { [TPM_ALG.SHA1]: 'sha1', [TPM_ALG.SHA256]: 'sha256', [TPM_ALG.SHA384]: 'sha384', [TPM_ALG.SHA512]: 'sha512' };

/** --san as the library parses it; a bad item is a usage error, before any request. */
export function sansOf(text: string | undefined, option = '--san'): SubjectAltName[] {
  if (text === undefined) return [];
  try {
    return parseSubjectAltNames(text);
  } catch (e) {
    if (e instanceof X509InputError) throw usageError(`${option}: ${e.message}`);
    throw e;
  }
}

/** The subject as @peculiar/x509 reads it, checked before any request (the library checks it again when building). */
async function checkSubject(subject: string): Promise<void> {
  const x509 = await import('@peculiar/x509');
  let why = 'it names no attribute';
  try {
    if (new x509.Name(subject).toJSON().length > 0) return;
  } catch (e) {
    why = (e as Error).message;
  }
  throw usageError(`--subject: ${JSON.stringify(subject)} is not a distinguished name such as "CN=app1,O=Acme" (${why})`);
}

/** The signer of `handle`: a signing key of the caller (general or AK); a decrypt key is exit 5. */
async function signerOf(handle: string, ctx: ToolContext): Promise<TpmSigner> {
  const client = await ctx.client();
  const key = await client.getKey(handle);
  if (key.usage !== 'sign') {
    throw new CliError(
      `key ${handle} is a decryption key (scheme ${key.scheme}): it cannot sign; make a signing key with: eve_tools_tpm2_genkey -G ${key.type}`,
      EXIT.UNSUPPORTED,
      'UNSUPPORTED',
      { kind: key.kind, usage: key.usage, scheme: key.scheme },
    );
  }
  const pub = await client.getPublic(handle, 'tss');
  if (!pub.data) throw new CliError("the TPM service's public key answer has no data", EXIT.GENERAL, 'BAD_RESPONSE');
  let publicArea;
  try {
    publicArea = decode(TPM2B_PUBLIC, pub.data);
  } catch (e) {
    throw new CliError(`the TPM service sent a public key that is not a TPM2B_PUBLIC: ${(e as Error).message}`, EXIT.GENERAL, 'BAD_RESPONSE');
  }
  try {
    return await createSigner(publicArea, async ({ data, hashAlg }) => {
      const hash = HASH_NAME[hashAlg];
      if (!hash) throw new SignerError(`hash 0x${hashAlg.toString(16)} is not one the service signs with`);
      return (await client.sign(handle, { message: data, hashAlg: hash, format: 'plain' })).signature;
    });
  } catch (e) {
    if (e instanceof SignerError) throw new CliError(`key ${handle}: ${e.message}`, EXIT.UNSUPPORTED, 'UNSUPPORTED');
    throw e;
  }
}

export interface X509Request {
  handle: string;
  subject: string;
  sans: SubjectAltName[];
  /** Present: a self-signed certificate valid this many days; absent: a CSR. */
  days?: number;
}

/** Builds the CSR or certificate, signed through the service, and writes its PEM to `out`. */
export async function makeX509(req: X509Request, out: string, ctx: ToolContext): Promise<void> {
  await checkSubject(req.subject);
  const signer = await signerOf(req.handle, ctx);
  let made: X509Output;
  try {
    const opts = { subject: req.subject, subjectAltNames: req.sans };
    made = req.days === undefined ? await createCsr(signer, opts) : await createSelfSignedCertificate(signer, { ...opts, days: req.days });
  } catch (e) {
    if (e instanceof X509InputError) throw usageError(e.message);
    if (e instanceof SignerError) throw new CliError(`key ${req.handle}: ${e.message}`, EXIT.GENERAL, 'SIGNER');
    throw e;
  }
  if (out !== STDOUT || !ctx.json) await writeOutput(out, made.pem, req.days === undefined ? 'request file' : 'certificate file', ctx.io.stdout);
  if (ctx.json) {
    await ctx.printJson({
      handle: req.handle,
      subject: req.subject,
      ...(req.sans.length ? { san: req.sans.map((s) => `${s.type === 'url' ? 'URI' : s.type === 'email' ? 'email' : s.type.toUpperCase()}:${s.value}`) } : {}),
      ...(req.days !== undefined ? { days: req.days } : {}),
      ...(out === STDOUT ? { pem: made.pem } : { file: out }),
    });
  }
}
