/**
 * Names for the numbers in a decoded frame. Codecs know only shapes (a `u16` is a `u16`), so
 * which table names a field is decided here from the field's name and the codec it sits in.
 */
import { TPMA_OBJECT, TPMA_SESSION, TPM_ALG, TPM_CAP, TPM_CC, TPM_ECC, TPM_RH, TPM_SE, TPM_ST, TPM_SU, hex32, nameOf } from '../constants.js';
import { COMMANDS } from '../commands.js';
import type { Codec } from '../wire/codec.js';

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

/** Fields that hold a TPM_ALG_ID wherever they appear. */
const ALG_FIELDS = new Set(['type', 'nameAlg', 'hashAlg', 'hash', 'sigAlg', 'scheme', 'algorithm', 'authHash', 'kdf', 'parentNameAlg', 'alg', 'mode']);
/** Fields that hold a handle (TPM_HANDLE / TPMI_RH_*). */
const HANDLE_FIELDS = new Set(['hierarchy', 'persistentHandle', 'flushHandle']);

const BY_FIELD: Record<string, Annotation> = {
  tag: { label: stName, suffix: 'Name' },
  capability: { label: capName, suffix: 'Name' },
  curveID: { label: eccName, suffix: 'Name' },
  sessionType: { label: seName, suffix: 'Name' },
  startupType: { label: suName, suffix: 'Name' },
  objectAttributes: { hex32: true, label: objectFlags, suffix: 'Flags' },
  sessionAttributes: { label: sessionFlags, suffix: 'Flags' },
};

/** Annotation of an integer field `field` decoded by `codec` (undefined: a plain number). */
export function annotationFor(field: string | undefined, codec: Codec<unknown>): Annotation | undefined {
  const m = codec.meta;
  if (m.kind === 'oneOf' && m.name.startsWith('TPMI_ALG_')) return ALG;
  if (field === undefined) return undefined;
  if (ALG_FIELDS.has(field)) return ALG;
  if (HANDLE_FIELDS.has(field)) return HANDLE;
  return BY_FIELD[field];
}

/** Annotation of the items of a TPML, by the list's name. */
export function annotationForListItem(listName: string): Annotation | undefined {
  switch (listName) {
    case 'TPML_HANDLE':
      return HANDLE;
    case 'TPML_ECC_CURVE':
      return { label: eccName, suffix: 'Name' };
    case 'TPML_CC':
    case 'TPML_CCA':
      // TPMA_CC: the command index is the low 16 bits, the rest are attributes.
      return { hex32: true, label: (v) => commandName(v % 0x10000), suffix: 'Name' };
    default:
      return undefined;
  }
}

export { hex32 };
