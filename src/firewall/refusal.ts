/**
 * How the firewall says no: a TPM response code, built the way the TPM builds its own
 * (Part 2 §6.6: format-one codes name the handle, parameter or session in error), so stock
 * software (tpm2-tss's Tss2_RC_Decode) reports it like any TPM error.
 */
import { TPM_RC } from '../tpm/rc.js';
import { marshalErrorResponse } from '../tpm/command.js';

// Part 2 §6.6.3: TPM_RC_H/P/S and TPM_RC_1. Added, never or-ed (the values stay small).
const RC_P = 0x040;
const RC_S = 0x800;
const RC_N = 0x100;

/** A format-one code naming handle n (1-based) of the handle area. */
export const atHandle = (base: number, n: number): number => base + n * RC_N;
/** A format-one code naming parameter n (1-based). */
export const atParam = (base: number, n: number): number => base + RC_P + n * RC_N;
/** A format-one code naming session n (1-based) of the authorization area. */
export const atSession = (base: number, n: number): number => base + RC_S + n * RC_N;
/** TPM_RC_REFERENCE_Hn: handle n (1-based) names no loaded object or session (Part 2 §6.6.3). */
export const notLoaded = (n: number): number => TPM_RC.REFERENCE_H0 + n - 1;

/** A decision to answer with an error: the code and, for the audit log, why. */
export class Refusal extends Error {
  override readonly name = 'Refusal';
  constructor(
    readonly rc: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** Throws a Refusal (the checks read as one line each). */
export function refuse(rc: number, reason: string): never {
  throw new Refusal(rc, reason);
}

/** The response frame for a refusal: header only, as the TPM answers any error. */
export function errorFrame(rc: number): Uint8Array {
  return marshalErrorResponse(rc);
}
