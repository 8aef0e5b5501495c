/**
 * Names for the numbers in a decoded frame. Which table names a number is decided by what its
 * codec says it is (`meta.name` of a typed leaf: 'TPM_ALG_ID', 'TPM_HANDLE', 'TPMA_OBJECT', ...,
 * see structures.ts), never by the field's name.
 */
import { TPMA_OBJECT, TPMA_SESSION, TPM_ALG, TPM_CAP, TPM_CC, TPM_ECC, TPM_RH, TPM_SE, TPM_ST, TPM_SU, hex32, nameOf } from '../constants.js';
import { COMMANDS } from '../commands.js';
import type { AnyCodec } from '../wire/codec.js';

/** How a number is shown: `hex32` fields become "0x%08x" strings, the others stay numbers. */
export interface Annotation {
  /** Render the value as a 0x%08x string (handles, codes, attribute words). */
  hex32?: boolean;
  /** Text shown next to the value under `<field><suffix>`. */
  label?: (v: number) => string | undefined;
  suffix?: 'Name' | 'Flags';
}

const table = (prefix: string, t: Readonly<Record<string, number>>) => (v: number) => {
  const n = nameOf(t, v);
  return n === undefined ? undefined : prefix + n;
};

export const algName = table('TPM_ALG_', TPM_ALG);
const stName = table('TPM_ST_', TPM_ST);
const capName = table('TPM_CAP_', TPM_CAP);
const eccName = table('TPM_ECC_', TPM_ECC);
const seName = table('TPM_SE_', TPM_SE);
const suName = table('TPM_SU_', TPM_SU);

/** TPM_RH_OWNER, TPM_RS_PW, ...; undefined for other handles. */
export function handleName(h: number): string | undefined {
  const n = nameOf(TPM_RH, h);
  if (n === undefined) return undefined;
  return n.startsWith('RS_') ? `TPM_${n}` : `TPM_RH_${n}`;
}

/** `fixedTPM|fixedParent|...`; unknown bits as hex. */
function flags(t: Readonly<Record<string, number>>) {
  return (v: number): string => {
    const names: string[] = [];
    let rest = v;
    for (const [k, bit] of Object.entries(t)) {
      if (Math.floor(v / bit) % 2 === 1) {
        names.push(k);
        rest -= bit;
      }
    }
    if (rest !== 0) names.push(`0x${rest.toString(16)}`);
    return names.join('|');
  };
}
export const sessionFlags = flags(TPMA_SESSION);
const objectFlags = flags(TPMA_OBJECT);

/** Name of a command code the library knows (`Sign`), else undefined. */
export function commandName(code: number): string | undefined {
  return COMMANDS.get(code)?.name ?? nameOf(TPM_CC, code);
}

const ALG: Annotation = { label: algName, suffix: 'Name' };
const HANDLE: Annotation = { hex32: true, label: handleName, suffix: 'Name' };
// TPMA_CC: the command index is the low 16 bits, the rest are attributes.
const COMMAND: Annotation = { hex32: true, label: (v) => commandName(v % 0x10000), suffix: 'Name' };

/**
 * Annotation of each typed leaf, by its Part 2 type name (the codec's `meta.name`). Leaves with
 * no table here (TPM_PT, TPM_PT_PCR, TPMA_ALGORITHM, TPMA_LOCALITY) are shown as plain numbers.
 */
const BY_LEAF: Readonly<Record<string, Annotation>> = {
  TPM_ALG_ID: ALG,
  TPM_HANDLE: HANDLE,
  TPM_ST: { label: stName, suffix: 'Name' },
  TPM_CAP: { label: capName, suffix: 'Name' },
  TPM_ECC_CURVE: { label: eccName, suffix: 'Name' },
  TPM_SE: { label: seName, suffix: 'Name' },
  TPM_SU: { label: suName, suffix: 'Name' },
  TPMA_OBJECT: { hex32: true, label: objectFlags, suffix: 'Flags' },
  TPMA_SESSION: { label: sessionFlags, suffix: 'Flags' },
  TPMA_CC: COMMAND,
  TPM_CC: COMMAND,
};

/** The Part 2 type of an integer codec: its leaf name, or that of the leaf a TPMI_ type restricts. */
export function leafName(codec: AnyCodec): string | undefined {
  const m = codec.meta;
  if (m.kind === 'oneOf') return leafName(m.base);
  if (m.kind === 'u8' || m.kind === 'u16' || m.kind === 'u32' || m.kind === 'i32') return m.name;
  return undefined;
}

/** Annotation of an integer decoded by `codec` (undefined: a plain number). */
export function annotationFor(codec: AnyCodec): Annotation | undefined {
  const name = leafName(codec);
  return name === undefined ? undefined : BY_LEAF[name];
}

export { hex32 };
