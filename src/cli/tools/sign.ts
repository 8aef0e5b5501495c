import { fstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { hashAlgId, parseHandle, parseHash, parseSignatureFormat, type HashName } from '../args.js';
import { CliError, EXIT, fileError } from '../errors.js';
import { checkOutputPath, STDOUT, writeOutput } from '../output.js';
import { Progress } from '../progress.js';
import type { ToolContext, ToolDef } from '../run.js';
import type { ClientLike, KeyInfo, SignResult } from '../service.js';
import { readSmallInput } from './small-input.js';

interface Opts {
  key: string;
  message: string;
  hashAlgorithm?: string;
  signature: string;
  format: string;
  progress: boolean;
  digest?: boolean;
}

interface MessageSource {
  stream: NodeJS.ReadableStream;
  /** Known for regular files (lets the client send Content-Length and us show time left). */
  length: number | undefined;
  /** Set when reading the input failed, so that failure is reported instead of its echo. */
  failure: () => unknown;
  close(): Promise<void>;
}

async function openMessage(path: string, stdin: NodeJS.ReadableStream): Promise<MessageSource> {
  let failure: unknown;
  if (path === STDOUT) {
    let length: number | undefined;
    const fd = (stdin as { fd?: number }).fd;
    if (typeof fd === 'number') {
      try {
        const st = fstatSync(fd);
        if (st.isFile()) length = st.size;
      } catch {
        // not stat-able: stream without a length
      }
    }
    stdin.once('error', (e) => (failure = e));
    return { stream: stdin, length, failure: () => failure, close: async () => {} };
  }
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw fileError('cannot read message file', path, e);
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    const stream = fh.createReadStream({ highWaterMark: 256 * 1024, autoClose: false });
    stream.once('error', (e) => (failure = e));
    return {
      stream,
      // FIFOs and devices have no meaningful size: stream them without one.
      length: st.isFile() ? st.size : undefined,
      failure: () => failure,
      close: async () => {
        // Stop reading first: after an early error answer the stream may still be flowing.
        stream.destroy();
        await fh.close().catch(() => {});
      },
    };
  } catch (e) {
    await fh.close().catch(() => {});
    throw fileError('cannot read message file', path, e);
  }
}

/** A hash's TPM_ALG_ID as genaik's -G takes it: 0x4, 0xB, 0xC, 0xD. */
const hashId = (h: HashName): string => `0x${hashAlgId(h).toString(16).toUpperCase()}`;

/**
 * Messages of known length up to this are signed in one request: a wrong -g costs sending them
 * for nothing, less than asking the key's hash first costs every sign. Larger ones, and those
 * of unknown length, are checked against the key before they are streamed.
 */
export const ASK_KEY_ABOVE = 1024 * 1024;

/** The precise refusal of a hash the key does not sign with. */
function wrongHash(handle: string, key: KeyInfo, wanted: HashName): CliError {
  const how =
    key.kind === 'general'
      ? `(its hash is fixed when it is created), not ${wanted}; create a ${wanted} key with: eve_tools_tpm2_genkey -G ${key.type} --scheme ${key.scheme} -g ${hashId(wanted)}`
      : `(an AK's hash is fixed when it is created), not ${wanted}; create a ${wanted} key with: eve_tools_tpm2_genaik -g ${key.type} -G ${hashId(wanted)}`;
  return new CliError(
    `key ${handle} signs with ${key.hashAlg} only ${how}`,
    EXIT.UNSUPPORTED,
    'UNSUPPORTED',
    { keyHashAlg: key.hashAlg, hashAlg: wanted },
  );
}

const isUnsupported = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === 'UNSUPPORTED';

/** Digest sizes, for -d: the file is the digest itself. */
const DIGEST_HASH: Readonly<Record<number, HashName>> = { 20: 'sha1', 32: 'sha256', 48: 'sha384', 64: 'sha512' };
const DIGEST_SIZE: Readonly<Record<HashName, number>> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

/** -d: the digest read whole, its hash (-g, else told by its size), signed in one request. */
async function signDigest(client: ClientLike, handle: string, path: string, wanted: HashName | undefined, format: string, stdin: NodeJS.ReadableStream): Promise<SignResult> {
  const digest = await readSmallInput(path, 'digest file', 64, stdin);
  const name = path === STDOUT ? 'standard input' : path;
  const bySize = DIGEST_HASH[digest.length];
  if (wanted !== undefined && digest.length !== DIGEST_SIZE[wanted]) {
    throw new CliError(`digest file '${name}' has ${digest.length} bytes; a ${wanted} digest (-g) has ${DIGEST_SIZE[wanted]}`, EXIT.FILE, 'FILE');
  }
  if (!bySize) {
    throw new CliError(
      `digest file '${name}' has ${digest.length} bytes; a digest has 20 (sha1), 32 (sha256), 48 (sha384) or 64 (sha512) — with -d the file is the digest itself (openssl dgst -sha256 -binary)`,
      EXIT.FILE,
      'FILE',
    );
  }
  const hashAlg = wanted ?? bySize;
  try {
    return await client.signDigest(handle, { digest, hashAlg, format });
  } catch (e) {
    if (isUnsupported(e)) {
      // A hash the key does not have gets the precise message; anything else (an AK, a decrypt key) the service's.
      const key = await client.getKey(handle);
      if (key.usage === 'sign' && key.kind === 'general' && key.hashAlg !== hashAlg) throw wrongHash(handle, key, hashAlg);
    }
    throw e;
  }
}

async function writeSignature(res: SignResult, handle: string, out: string, format: string, ctx: ToolContext): Promise<void> {
  const sig = res.signature;
  if (sig.length === 0) throw new CliError('the TPM service sent an empty signature', EXIT.GENERAL, 'PROTOCOL');
  if (out !== STDOUT || !ctx.json) await writeOutput(out, sig, 'signature file', ctx.io.stdout);
  if (ctx.json) {
    await ctx.printJson({
      handle,
      sigAlg: res.sigAlg,
      hashAlg: res.hashAlg,
      format: res.format ?? format,
      ...(out === STDOUT ? { signature: Buffer.from(sig).toString('base64') } : { file: out }),
      signatureLength: sig.length,
      digest: res.digest,
      messageLength: res.messageLength,
    });
  }
}

export const sign: ToolDef<Opts> = {
  name: 'eve_tools_tpm2_sign',
  summary: "Sign a message (any size, streamed) with one of this application's keys.",
  configure(cmd) {
    cmd
      .requiredOption('-k, --key <handle>', 'persistent handle of the key, e.g. 0x81010000')
      .requiredOption('-m, --message <file>', 'message to sign (- for standard input); with -d, the digest')
      .option('-d, --digest', 'the -m file is a digest already computed (as tpm2_sign -d; general signing keys only, an AK signs only what the TPM hashed)')
      .option(
        '-g, --hash-algorithm <alg>',
        "hash, TPM_ALG_ID or name: 0x4 (sha1), 0xB (sha256), 0xC (sha384), 0xD (sha512); must match the key's scheme (default: the key's hash)",
      )
      .requiredOption('-s, --signature <file>', 'file to write the signature to (- for standard output)')
      .option('--format <format>', 'plain (what openssl dgst -verify takes), der (same as plain) or tss (TPMT_SIGNATURE)', 'plain')
      .option('--no-progress', 'never show the progress line (shown on a terminal for long uploads)')
      .addHelpText(
        'after',
        "\nThe scheme is the key's own, fixed when it was made (RSASSA, RSA-PSS or ECDSA): nothing to choose here.\n" +
          'A key made with genkey --scheme rsapss signs with PSS, salt length = digest length.\n' +
          '\nExample:\n  $ eve_tools_tpm2_sign -k 0x81010000 -m message.txt -g 0x00B -s sign.bin\n  $ openssl dgst -sha256 -verify ak.pem -signature sign.bin message.txt\n  Verified OK' +
          '\n  $ openssl dgst -sha256 -binary -out digest.bin message.txt\n  $ eve_tools_tpm2_sign -k 0x81010001 -d -m digest.bin -s sign.bin',
      );
  },
  async run(opts, ctx) {
    const handle = parseHandle(opts.key, '-k');
    const wanted = opts.hashAlgorithm !== undefined ? parseHash(opts.hashAlgorithm, '-g') : undefined;
    const format = parseSignatureFormat(opts.format);
    const out = opts.signature;
    ctx.about(handle);
    // Everything local is checked before the service and the TPM spend any time.
    checkOutputPath(out, 'signature file');
    if (out === STDOUT && !ctx.json && ctx.io.stdout.isTTY) {
      throw new CliError('refusing to write a binary signature to a terminal; use -s FILE', EXIT.USAGE, 'USAGE');
    }
    if (opts.digest === true) {
      const res = await signDigest(await ctx.client(), handle, opts.message, wanted, format, ctx.io.stdin);
      return writeSignature(res, handle, out, format, ctx);
    }
    const msg = await openMessage(opts.message, ctx.io.stdin);
    let progress: Progress | undefined;
    try {
      const client = await ctx.client();
      // An AK's scheme fixes its hash; without -g the service uses the key's. Before a large
      // message is streamed, asking first gives the precise message instead of a wasted upload.
      if (wanted !== undefined && (msg.length === undefined || msg.length > ASK_KEY_ABOVE)) {
        const key = await client.getKey(handle);
        if (key.hashAlg !== wanted) throw wrongHash(handle, key, wanted);
      }
      if (opts.message === STDOUT && (ctx.io.stdin as { isTTY?: boolean }).isTTY) {
        ctx.warn('reading the message from the terminal; end it with Ctrl-D');
      }
      progress = new Progress({
        label: 'sending message',
        total: msg.length,
        stream: ctx.io.stderr,
        enabled: opts.progress === false ? false : ctx.io.stderr.isTTY === true,
      });
      const p = progress;
      let res;
      try {
        res = await client.sign(handle, {
          message: msg.stream,
          ...(msg.length !== undefined ? { length: msg.length } : {}),
          ...(wanted !== undefined ? { hashAlg: wanted } : {}),
          format,
          onProgress: (n) => p.update(n),
        });
      } catch (e) {
        const f = msg.failure();
        if (f) throw fileError('cannot read message file', opts.message === STDOUT ? 'standard input' : opts.message, f);
        if (wanted !== undefined && isUnsupported(e)) {
          // Refused without the key's hash asked first: ask now, for the precise message.
          const key = await client.getKey(handle);
          if (key.hashAlg !== wanted) throw wrongHash(handle, key, wanted);
        }
        throw e;
      }
      progress.end();
      await writeSignature(res, handle, out, format, ctx);
    } finally {
      progress?.end();
      await msg.close();
    }
  },
};
