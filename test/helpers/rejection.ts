/** The transport error a promise rejects with (the test fails if it resolves or rejects otherwise). */
import { expect } from 'vitest';
import { TpmTransportError } from '../../src/tpm/index.js';

export async function rejection(p: Promise<unknown>): Promise<TpmTransportError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TpmTransportError);
    return e as TpmTransportError;
  }
  throw new Error('expected a rejection');
}
