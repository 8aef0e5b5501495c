/**
 * Typed failures of the marshalling layer. Decoding untrusted bytes (a TPM's response, a
 * command given to `tpm2-decode`, a blob read from disk) only ever throws TpmDecodeError;
 * encoding a value that does not fit its TPM type only ever throws TpmEncodeError.
 */

/** Bytes could not be decoded: where (structure path and byte offset) and why. */
export class TpmDecodeError extends Error {
  override readonly name = 'TpmDecodeError';
  constructor(
    readonly reason: string,
    /** Path of structure/field names leading to the failure, e.g. `TPMT_PUBLIC.parameters.keyBits`. */
    readonly path: string,
    /** Byte offset (from the start of the buffer being decoded) where the failure was found. */
    readonly offset: number,
  ) {
    super(`${path ? path + ': ' : ''}${reason} (at byte ${offset})`);
  }
}

/** A value cannot be marshalled as its TPM type (out of range, too long, unknown selector). */
export class TpmEncodeError extends Error {
  override readonly name = 'TpmEncodeError';
  constructor(
    readonly reason: string,
    readonly path: string,
  ) {
    super(`${path ? path + ': ' : ''}${reason}`);
  }
}
