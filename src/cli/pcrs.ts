/**
 * PCR values as tpm2-tools shows and stores them: the text of tpm2_pcrread (and of tpm2_quote's
 * `pcrs:` block) and the pcrs.out file of tpm2_quote -o / tpm2_pcrread -F serialized, which
 * tpm2_checkquote -f and eve-tpm-verify -f read.
 */
import type { PcrReading } from '../service/client/client.js';
import { formatPcrSelection, parsePcrBanks, parsePcrSelection, PcrFormatError, writePcrsOut } from '../tpm/attest/formats.js';
import { CliError, EXIT, usageError } from './errors.js';

/** The readings grouped by bank, banks and PCRs in the order given (the service's selection order). */
function banks(pcrs: readonly PcrReading[]): Array<{ bank: string; items: PcrReading[] }> {
  const out: Array<{ bank: string; items: PcrReading[] }> = [];
  for (const p of pcrs) {
    const last = out[out.length - 1];
    if (last?.bank === p.bank) last.items.push(p);
    else out.push({ bank: p.bank, items: [p] });
  }
  return out;
}

/**
 * tpm2_pcrread's text: `  sha256:` then `    0 : 0x<HEX>` (the index left-aligned in two
 * columns, upper-case hex), `indent` more spaces on each line.
 */
export function pcrText(pcrs: readonly PcrReading[], indent = ''): string {
  const lines: string[] = [];
  for (const b of banks(pcrs)) {
    lines.push(`${indent}  ${b.bank}:`);
    for (const p of b.items) lines.push(`${indent}    ${String(p.pcr).padEnd(2)}: 0x${Buffer.from(p.value).toString('hex').toUpperCase()}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** pcrs.out (tpm2-tools' serialized form) of the readings, in their order. */
export function pcrsOut(pcrs: readonly PcrReading[]): Uint8Array {
  try {
    const sel = parsePcrSelection(banks(pcrs).map((b) => `${b.bank}:${b.items.map((p) => p.pcr).join(',')}`).join('+'));
    return writePcrsOut(
      sel,
      pcrs.map((p) => p.value),
    );
  } catch (e) {
    // The client checked the order; what is left is a bank or a value size the format cannot hold.
    throw new CliError(`the TPM service sent PCR values that pcrs.out cannot hold: ${(e as Error).message}`, EXIT.GENERAL, 'PROTOCOL');
  }
}

/** tpm2_pcrread -F values: the values one after another. */
export function pcrValuesOut(pcrs: readonly PcrReading[]): Uint8Array {
  return new Uint8Array(Buffer.concat(pcrs.map((p) => p.value)));
}

/** The readings as --json shows them (hex values, as the service sends them). */
export function pcrJson(pcrs: readonly PcrReading[]): Array<{ bank: string; pcr: number; value: string }> {
  return pcrs.map((p) => ({ bank: p.bank, pcr: p.pcr, value: Buffer.from(p.value).toString('hex') }));
}

/**
 * A PCR selection as tpm2_pcrread and tpm2_quote -l take it (`sha256:0,1,2+sha1:0`), canonical.
 * Here, not in args.ts: the TPM codecs it needs are loaded only by the tools that take one.
 */
export function parsePcrSelectionText(text: string, option: string): string {
  try {
    return formatPcrSelection(parsePcrBanks(text));
  } catch (e) {
    if (e instanceof PcrFormatError) throw usageError(`${option}: ${e.message}`);
    throw e;
  }
}
