/**
 * NV reads: TPM2_NV_ReadPublic (Part 3 §31.6) and TPM2_NV_Read (§31.13), the latter in chunks
 * of at most TPM_PT_NV_BUFFER_MAX bytes (Part 2 §6.13), as the TPM refuses larger reads.
 */
import { NV_Read, NV_ReadPublic } from '../commands.js';
import { hex32 } from '../constants.js';
import { handleOf, type HandleArg } from '../command.js';
import type { TPMS_NV_PUBLIC } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { getTpmProperty } from './capability.js';

/** TPM_PT_NV_BUFFER_MAX (Part 2 §6.13): PT_FIXED + 44. */
export const TPM_PT_NV_BUFFER_MAX = 0x12c;
/** Our TPM2B_MAX_NV_BUFFER codec's bound: chunks are never larger. */
const CODEC_MAX = 2048;

export class NvError extends Error {
  override readonly name = 'NvError';
}

export interface NvPublicInfo {
  nvPublic: TPMS_NV_PUBLIC;
  /** The index's Name (nameAlg ‖ H(TPMS_NV_PUBLIC)). */
  name: Uint8Array;
}

const isNvIndex = (h: number) => h >= 0x01000000 && h <= 0x01ffffff;

/** TPM2_NV_ReadPublic: the index's public area and Name. */
export async function nvReadPublic(tpm: TpmRunner, index: HandleArg, opts: RunOptions = {}): Promise<NvPublicInfo> {
  const h = handleOf(index);
  if (!Number.isInteger(h) || !isNvIndex(h)) throw new NvError(`${String(h)} is not an NV index handle (0x01000000..0x01ffffff)`);
  const r = await tpm.run(NV_ReadPublic, { nvIndex: h }, opts);
  if (r.nvPublic.nvIndex !== h) throw new NvError(`NV_ReadPublic answered for index ${hex32(r.nvPublic.nvIndex)}, not ${hex32(h)}`);
  return { nvPublic: r.nvPublic, name: r.nvName };
}

/** TPM_PT_NV_BUFFER_MAX of the TPM (capped at 2048); 512 if the TPM does not say. */
export async function nvBufferMax(tpm: TpmRunner, opts: RunOptions = {}): Promise<number> {
  const v = await getTpmProperty(tpm, TPM_PT_NV_BUFFER_MAX, opts);
  if (v === undefined || v === 0) return 512;
  return Math.min(v, CODEC_MAX);
}

export interface NvReadOptions extends RunOptions {
  /** First byte to read (default 0). */
  offset?: number;
  /** Bytes to read (default: from offset to the end of the index). */
  size?: number;
  /**
   * The authorizing handle: the index itself (default, as tpm2_nvread without -C),
   * TPM_RH_OWNER or TPM_RH_PLATFORM. Its authorization goes in `auth.authHandle`.
   */
  authHandle?: HandleArg;
  /** Chunk size; default TPM_PT_NV_BUFFER_MAX. */
  chunkSize?: number;
}

/**
 * Reads an NV index (or part of it), chunked by TPM_PT_NV_BUFFER_MAX. The index's size is read
 * first (NV_ReadPublic); a range beyond it is refused before anything is read.
 */
export async function nvRead(tpm: TpmRunner, index: HandleArg, opts: NvReadOptions = {}): Promise<Uint8Array> {
  const info = await nvReadPublic(tpm, index, opts);
  const nvIndex = typeof index === 'number' ? { handle: index, name: info.name } : index;
  const total = info.nvPublic.dataSize;
  const offset = opts.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0 || offset > total) throw new NvError(`offset ${String(offset)} is outside index ${hex32(info.nvPublic.nvIndex)} of ${total} bytes`);
  const size = opts.size ?? total - offset;
  if (!Number.isInteger(size) || size < 0 || offset + size > total) {
    throw new NvError(`reading ${String(size)} bytes at offset ${offset} goes beyond index ${hex32(info.nvPublic.nvIndex)} of ${total} bytes`);
  }
  let chunk = opts.chunkSize ?? (await nvBufferMax(tpm, opts));
  if (!Number.isInteger(chunk) || chunk < 1) throw new NvError(`chunk size ${String(chunk)} is not a positive integer`);
  chunk = Math.min(chunk, CODEC_MAX);
  const authHandle = opts.authHandle ?? nvIndex;
  const out = new Uint8Array(size);
  for (let done = 0; done < size; ) {
    const n = Math.min(chunk, size - done);
    const r = await tpm.run(NV_Read, { authHandle, nvIndex, size: n, offset: offset + done }, opts);
    if (r.data.length !== n) throw new NvError(`NV_Read returned ${r.data.length} bytes at offset ${offset + done}, not the ${n} asked`);
    out.set(r.data, done);
    done += n;
  }
  return out;
}
