/**
 * Signing a message of any size with a restricted key. A restricted key signs only digests
 * the TPM itself computed, proven by a TPMT_TK_HASHCHECK ticket (Part 1 §11.4.6.3): one
 * TPM2_Hash for messages up to the TPM's input buffer, a hash sequence beyond. The message is
 * streamed: memory stays at one input buffer whatever the message size.
 */
import { Hash, HashSequenceStart, SequenceComplete, SequenceUpdate, Sign } from '../commands.js';
import { TPM_ALG, TPM_RH, TPMA_OBJECT } from '../constants.js';
import type { TPMT_PUBLIC, TPMT_SIG_SCHEME, TPMT_SIGNATURE, TPMT_TK_HASHCHECK } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import type { HandleArg } from '../command.js';
import { maxInputBuffer } from './capability.js';
import { flushQuietly, readPublic } from './objects.js';

/** TPM_GENERATED_VALUE (Part 2 §6.2): messages starting with it get no ticket, by design. */
const TPM_GENERATED = Uint8Array.of(0xff, 0x54, 0x43, 0x47);

export class RestrictedSignError extends Error {
  override readonly name = 'RestrictedSignError';
}

export type MessageSource = Uint8Array | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>;

export interface HashResult {
  digest: Uint8Array;
  validation: TPMT_TK_HASHCHECK;
  /** Bytes hashed. */
  length: number;
}

export interface HashOptions extends RunOptions {
  /** Hierarchy for the ticket (default owner). */
  hierarchy?: number;
  /** Called after each chunk reaches the TPM (bytes so far). */
  onProgress?: (bytes: number) => void;
}

/** Re-chunks any byte source into pieces of exactly `size` bytes (the last may be shorter). */
async function* chunked(source: MessageSource, size: number): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(size);
  let fill = 0;
  const it: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array> = source instanceof Uint8Array ? [source] : source;
  for await (const piece of it as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof piece === 'string' ? new TextEncoder().encode(piece) : piece;
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(size - fill, bytes.length - off);
      buf.set(bytes.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === size) {
        yield buf;
        buf = new Uint8Array(size); // the consumer may still hold the previous one
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}

/**
 * Hashes a message in the TPM and returns the digest with its HASHCHECK ticket. Whether a
 * single TPM2_Hash suffices is known only once more than one buffer has been seen, so the
 * first chunk is held back one step.
 */
export async function tpmHash(tpm: TpmRunner, source: MessageSource, hashAlg: number, opts: HashOptions = {}): Promise<HashResult> {
  const hierarchy = opts.hierarchy ?? TPM_RH.OWNER;
  const size = await maxInputBuffer(tpm, opts);
  const chunks = chunked(source, size)[Symbol.asyncIterator]();
  const first = await chunks.next();
  const firstChunk = first.done ? new Uint8Array(0) : first.value;
  const second = first.done ? first : await chunks.next();
  if (second.done) {
    const r = await tpm.run(Hash, { data: firstChunk, hashAlg, hierarchy }, opts);
    opts.onProgress?.(firstChunk.length);
    return { digest: r.outHash, validation: r.validation, length: firstChunk.length };
  }
  const seq = await tpm.run(HashSequenceStart, { auth: new Uint8Array(0), hashAlg }, opts);
  let completed = false;
  try {
    let length = 0;
    let pending: Uint8Array = firstChunk;
    let next: IteratorResult<Uint8Array> = second;
    while (!next.done) {
      await tpm.run(SequenceUpdate, { sequenceHandle: seq.sequenceHandle, buffer: pending }, opts);
      length += pending.length;
      opts.onProgress?.(length);
      pending = next.value;
      next = await chunks.next();
    }
    const r = await tpm.run(SequenceComplete, { sequenceHandle: seq.sequenceHandle, buffer: pending, hierarchy }, opts);
    completed = true; // SequenceComplete flushed the sequence object
    length += pending.length;
    opts.onProgress?.(length);
    return { digest: r.result, validation: r.validation, length };
  } finally {
    if (!completed) await flushQuietly(tpm, seq.sequenceHandle);
    await chunks.return?.(undefined);
  }
}

export interface SignOptions extends HashOptions {
  /**
   * Hash algorithm of the digest. Default: the hash of the key's scheme (or of `scheme`).
   * A restricted key signs only with its own scheme's hash: a different one is refused here.
   */
  hashAlg?: number;
  /** Signing scheme; default TPM_ALG_NULL = the key's own scheme. */
  scheme?: TPMT_SIG_SCHEME;
  /** The key's public area, if the caller has it (else signMessage reads it: one ReadPublic). */
  publicArea?: TPMT_PUBLIC;
}

/** TPM2_Sign over a TPM-computed digest with its ticket. */
export async function signDigest(
  tpm: TpmRunner,
  keyHandle: HandleArg,
  digest: Uint8Array,
  validation: TPMT_TK_HASHCHECK,
  opts: SignOptions = {},
): Promise<TPMT_SIGNATURE> {
  const inScheme = opts.scheme ?? { scheme: TPM_ALG.NULL, details: null };
  const r = await tpm.run(Sign, { keyHandle, digest, inScheme, validation }, opts);
  return r.signature;
}

/** The hash of a key's signing scheme, or undefined when it has none (scheme NULL). */
export function keySchemeHash(pub: TPMT_PUBLIC): number | undefined {
  // A symmetric cipher has no scheme; the other types' schemes carry a hash unless NULL (details null).
  return pub.type === TPM_ALG.SYMCIPHER ? undefined : pub.parameters.scheme.details?.hashAlg;
}

function algName(alg: number): string {
  const name = Object.entries(TPM_ALG).find(([, v]) => v === alg)?.[0];
  return name ?? `0x${alg.toString(16)}`;
}

/**
 * Hashes `message` in the TPM (streamed) and signs the digest with `keyHandle`. The hash is
 * the key's own (read from its public area); a message starting with TPM_GENERATED_VALUE is
 * refused as soon as its first 4 bytes arrive, before the rest is read or sent.
 */
export async function signMessage(tpm: TpmRunner, keyHandle: HandleArg, message: MessageSource, opts: SignOptions = {}): Promise<TPMT_SIGNATURE & { digest: Uint8Array }> {
  let pub = opts.publicArea;
  let key = keyHandle;
  if (!pub) {
    const info = await readPublic(tpm, keyHandle, opts);
    pub = info.publicArea;
    if (typeof keyHandle === 'number') key = info; // the handle with its Name, for sessions
  }
  const restricted = (pub.objectAttributes & TPMA_OBJECT.restricted) !== 0;
  const keyHash = keySchemeHash(pub);
  const schemeHash = opts.scheme && opts.scheme.scheme !== TPM_ALG.NULL ? opts.scheme.details?.hashAlg : undefined;
  const hashAlg = opts.hashAlg ?? schemeHash ?? keyHash ?? TPM_ALG.SHA256;
  if (restricted && keyHash !== undefined && hashAlg !== keyHash) {
    throw new RestrictedSignError(
      `the key signs with ${algName(keyHash)}; a restricted key refuses a ${algName(hashAlg)} digest (leave hashAlg out to use the key's own)`,
    );
  }
  const watched = watchPrefix(message, (prefix) => {
    if (prefix.length === 4 && TPM_GENERATED.every((b, i) => prefix[i] === b)) {
      throw new RestrictedSignError('the message starts with TPM_GENERATED_VALUE (0xFF544347); a restricted key refuses to sign such data');
    }
  });
  const { digest, validation } = await tpmHash(tpm, watched, hashAlg, opts);
  if (validation.hierarchy === TPM_RH.NULL && restricted) {
    // Not TPM_GENERATED_VALUE (refused above): say what did happen.
    const why = opts.hierarchy === TPM_RH.NULL ? 'the hash was asked for with hierarchy TPM_RH_NULL, which gives no ticket' : 'the TPM gave no ticket for the hash';
    throw new RestrictedSignError(`${why}; a restricted key signs only with a ticket`);
  }
  const signature = await signDigest(tpm, key, digest, validation, opts);
  return { ...signature, digest };
}

/** Passes a source through, reporting its first 4 bytes once known. */
async function* watchPrefix(source: MessageSource, report: (prefix: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  const prefix = new Uint8Array(4);
  let have = 0;
  let reported = false;
  const it: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array> = source instanceof Uint8Array ? [source] : source;
  for await (const piece of it as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof piece === 'string' ? new TextEncoder().encode(piece) : piece;
    if (!reported) {
      const n = Math.min(4 - have, bytes.length);
      prefix.set(bytes.subarray(0, n), have);
      have += n;
      if (have === 4) {
        report(prefix);
        reported = true;
      }
    }
    yield bytes;
  }
  if (!reported) report(prefix.subarray(0, have));
}
