/**
 * The qualifying data a verifier expects: its own nonce, or — for an app-bound attestation —
 * appQualifyingData(label, app identity, nonce), recomputed here from the app it talks to.
 */
import { usageError } from '../errors.js';
import { appQualifyingData, type AppBindingLabel } from '../../tpm/attest/app-binding.js';
import { parseHexOption } from './input.js';

export interface Expected {
  /** What extraData must equal. */
  qualifyingData: Uint8Array;
  /** Present for a bound attestation: what was checked, for the report. */
  binding?: { label: AppBindingLabel; identity: string; nonce: string; qualifyingData: string };
}

export function expectedQualifyingData(nonceHex: string | undefined, app: string | undefined, label: AppBindingLabel): Expected {
  const nonce = parseHexOption(nonceHex, '-q (the nonce)');
  if (app === undefined) return { qualifyingData: nonce };
  let qualifyingData: Uint8Array;
  try {
    qualifyingData = appQualifyingData(label, app, nonce);
  } catch (e) {
    throw usageError(`--app ${JSON.stringify(app)} with -q: ${(e as Error).message}`);
  }
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  return { qualifyingData, binding: { label, identity: app, nonce: hex(nonce), qualifyingData: hex(qualifyingData) } };
}

/** The text-mode note saying which identity the nonce check was about. */
export function bindingNote(e: Expected): string[] {
  return e.binding ? [`bound to app identity ${JSON.stringify(e.binding.identity)} (${e.binding.label}): the nonce check compares extraData with ${e.binding.qualifyingData}`] : [];
}
