/**
 * Object housekeeping: read a public area, make an object persistent, evict it, flush.
 */
import { EvictControl, FlushContext, ReadPublic } from '../commands.js';
import { TPM_RH } from '../constants.js';
import { handleOf, type HandleArg, type NamedHandle } from '../command.js';
import type { TPMT_PUBLIC } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';

/** What ReadPublic tells of an object: it is also the object's handle with its Name. */
export interface PublicInfo extends NamedHandle {
  publicArea: TPMT_PUBLIC;
  name: Uint8Array;
  qualifiedName: Uint8Array;
}

/** TPM2_ReadPublic (Part 3 §12.4). */
export async function readPublic(tpm: TpmRunner, handle: HandleArg, opts: RunOptions = {}): Promise<PublicInfo> {
  const r = await tpm.run(ReadPublic, { objectHandle: handle }, opts);
  return { handle: handleOf(handle), publicArea: r.outPublic, name: r.name, qualifiedName: r.qualifiedName };
}

/** TPM2_FlushContext (Part 3 §28.4). */
export async function flush(tpm: TpmRunner, handle: HandleArg, opts: RunOptions = {}): Promise<void> {
  await tpm.run(FlushContext, { flushHandle: handleOf(handle) }, opts);
}

/**
 * Flushes, ignoring failures: used on cleanup paths, where the original error matters more
 * and the handle may already be gone (TPM reset, transport closed).
 */
export async function flushQuietly(tpm: TpmRunner, handle: HandleArg): Promise<void> {
  try {
    await flush(tpm, handle);
  } catch {
    // best effort
  }
}

/** Makes a loaded object persistent at `persistentHandle` (TPM2_EvictControl, owner auth). */
export async function makePersistent(tpm: TpmRunner, objectHandle: HandleArg, persistentHandle: number, opts: RunOptions = {}): Promise<void> {
  await tpm.run(EvictControl, { auth: TPM_RH.OWNER, objectHandle, persistentHandle }, opts);
}

/** Removes a persistent object (TPM2_EvictControl on the persistent handle itself). */
export async function evictPersistent(tpm: TpmRunner, persistentHandle: HandleArg, opts: RunOptions = {}): Promise<void> {
  await tpm.run(EvictControl, { auth: TPM_RH.OWNER, objectHandle: persistentHandle, persistentHandle: handleOf(persistentHandle) }, opts);
}
