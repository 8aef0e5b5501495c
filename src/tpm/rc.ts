/**
 * TPM 2.0 response codes (TPM 2.0 Library Part 2 §6.6, TPM_RC) and their text.
 *
 * The text is exactly what tpm2-tss's `Tss2_RC_Decode` (libtss2-rc 3.2) prints, quirks included
 * (`(null)`, `handle(unk)`, `unknown error num: 0x29`, bare `tpm:0x917`), so an operator can grep
 * our logs and tpm2-tools' output for the same string. The structured fields (`kind`, `base`,
 * `index`) follow the specification where tpm2-tss's text does not (see `index` below).
 *
 * Response code layout (low 16 bits; bits 16..23 are the TSS "layer", 0 for the TPM itself):
 * - format one (bit 7 set): bits 5..0 error number, bit 6 P (a parameter is in error),
 *   bits 11..8 N (parameter number 1..15 when P; otherwise bit 11 = session, bits 10..8 = number).
 * - format zero (bit 7 clear): bits 6..0 error number, bit 8 V (TPM 2.0 code), bit 10 T (vendor),
 *   bit 11 S (warning).
 */

/** Named base codes, TPM 2.0 Part 2 §6.6.3 (keys without the `TPM_RC_` prefix, as TPM_CC etc.). */
export const TPM_RC = {
  SUCCESS: 0x000,
  /** The one TPM 1.2-format code a TPM 2.0 returns: a command with a 1.2 tag. */
  BAD_TAG: 0x01e,

  // Format-zero errors (RC_VER1 = 0x100).
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  SEQUENCE: 0x103,
  PRIVATE: 0x10b,
  HMAC: 0x119,
  DISABLED: 0x120,
  EXCLUSIVE: 0x121,
  AUTH_TYPE: 0x124,
  AUTH_MISSING: 0x125,
  POLICY: 0x126,
  PCR: 0x127,
  PCR_CHANGED: 0x128,
  UPGRADE: 0x12d,
  TOO_MANY_CONTEXTS: 0x12e,
  AUTH_UNAVAILABLE: 0x12f,
  REBOOT: 0x130,
  UNBALANCED: 0x131,
  COMMAND_SIZE: 0x142,
  COMMAND_CODE: 0x143,
  AUTHSIZE: 0x144,
  AUTH_CONTEXT: 0x145,
  NV_RANGE: 0x146,
  NV_SIZE: 0x147,
  NV_LOCKED: 0x148,
  NV_AUTHORIZATION: 0x149,
  NV_UNINITIALIZED: 0x14a,
  NV_SPACE: 0x14b,
  NV_DEFINED: 0x14c,
  BAD_CONTEXT: 0x150,
  CPHASH: 0x151,
  PARENT: 0x152,
  NEEDS_TEST: 0x153,
  NO_RESULT: 0x154,
  SENSITIVE: 0x155,

  // Format-one codes (RC_FMT1 = 0x080); the handle/parameter/session number is added on top.
  ASYMMETRIC: 0x081,
  ATTRIBUTES: 0x082,
  HASH: 0x083,
  VALUE: 0x084,
  HIERARCHY: 0x085,
  KEY_SIZE: 0x087,
  MGF: 0x088,
  MODE: 0x089,
  TYPE: 0x08a,
  HANDLE: 0x08b,
  KDF: 0x08c,
  RANGE: 0x08d,
  AUTH_FAIL: 0x08e,
  NONCE: 0x08f,
  PP: 0x090,
  SCHEME: 0x092,
  SIZE: 0x095,
  SYMMETRIC: 0x096,
  TAG: 0x097,
  SELECTOR: 0x098,
  INSUFFICIENT: 0x09a,
  SIGNATURE: 0x09b,
  KEY: 0x09c,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
  TICKET: 0x0a0,
  RESERVED_BITS: 0x0a1,
  BAD_AUTH: 0x0a2,
  EXPIRED: 0x0a3,
  POLICY_CC: 0x0a4,
  BINDING: 0x0a5,
  CURVE: 0x0a6,
  ECC_POINT: 0x0a7,
  /** Added in Part 2 rev 1.83; tpm2-tss 3.2 has no text for these two. */
  FW_LIMITED: 0x0a8,
  SVN_LIMITED: 0x0a9,

  // Warnings (RC_WARN = 0x900).
  CONTEXT_GAP: 0x901,
  OBJECT_MEMORY: 0x902,
  SESSION_MEMORY: 0x903,
  MEMORY: 0x904,
  SESSION_HANDLES: 0x905,
  OBJECT_HANDLES: 0x906,
  LOCALITY: 0x907,
  YIELDED: 0x908,
  CANCELED: 0x909,
  TESTING: 0x90a,
  REFERENCE_H0: 0x910,
  REFERENCE_H1: 0x911,
  REFERENCE_H2: 0x912,
  REFERENCE_H3: 0x913,
  REFERENCE_H4: 0x914,
  REFERENCE_H5: 0x915,
  REFERENCE_H6: 0x916,
  REFERENCE_S0: 0x918,
  REFERENCE_S1: 0x919,
  REFERENCE_S2: 0x91a,
  REFERENCE_S3: 0x91b,
  REFERENCE_S4: 0x91c,
  REFERENCE_S5: 0x91d,
  REFERENCE_S6: 0x91e,
  NV_RATE: 0x920,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  NV_UNAVAILABLE: 0x923,
  NOT_USED: 0x97f,
} as const;

export type TpmRcName = keyof typeof TPM_RC;

const NAME_OF = new Map<number, string>(Object.entries(TPM_RC).map(([k, v]) => [v, `TPM_RC_${k}`]));

/**
 * tpm2-tss's description of each base code (Tss2_RC_Decode's wording, typos included:
 * "objectsession", "not current accessible"). A base code missing here has no text there.
 */
const DESCRIPTION: Readonly<Partial<Record<number, string>>> = {
  [TPM_RC.INITIALIZE]: 'TPM not initialized by TPM2_Startup or already initialized',
  [TPM_RC.FAILURE]: 'commands not being accepted because of a TPM failure',
  [TPM_RC.SEQUENCE]: 'improper use of a sequence handle',
  [TPM_RC.PRIVATE]: 'not currently used',
  [TPM_RC.HMAC]: 'not currently used',
  [TPM_RC.DISABLED]: 'the command is disabled',
  [TPM_RC.EXCLUSIVE]: 'command failed because audit sequence required exclusivity',
  [TPM_RC.AUTH_TYPE]: 'authorization handle is not correct for command',
  [TPM_RC.AUTH_MISSING]: 'command requires an authorization session for handle and it is not present',
  [TPM_RC.POLICY]: 'policy failure in math operation or an invalid authPolicy value',
  [TPM_RC.PCR]: 'PCR check fail',
  [TPM_RC.PCR_CHANGED]: 'PCR have changed since checked',
  [TPM_RC.UPGRADE]:
    'For all commands, other than TPM2_FieldUpgradeData, this code indicates that the TPM is in ' +
    'field upgrade mode. For TPM2_FieldUpgradeData, this code indicates that the TPM is not in ' +
    'field upgrade mode',
  [TPM_RC.TOO_MANY_CONTEXTS]: 'context ID counter is at maximum',
  [TPM_RC.AUTH_UNAVAILABLE]: 'authValue or authPolicy is not available for selected entity',
  [TPM_RC.REBOOT]: 'a _TPM_Init and StartupCLEAR is required before the TPM can resume operation',
  [TPM_RC.UNBALANCED]:
    'the protection algorithms hash and symmetric are not reasonably balanced. The digest size of ' +
    'the hash must be larger than the key size of the symmetric algorithm.',
  [TPM_RC.COMMAND_SIZE]:
    'command commandSize value is inconsistent with contents of the command buffer. Either the ' +
    'size is not the same as the octets loaded by the hardware interface layer or the value is ' +
    'not large enough to hold a command header',
  [TPM_RC.COMMAND_CODE]: 'command code not supported',
  [TPM_RC.AUTHSIZE]:
    'the value of authorizationSize is out of range or the number of octets in the Authorization ' +
    'Area is greater than required',
  [TPM_RC.AUTH_CONTEXT]:
    'use of an authorization session with a context command or another command that cannot have ' +
    'an authorization session',
  [TPM_RC.NV_RANGE]: 'NV offset+size is out of range',
  [TPM_RC.NV_SIZE]: 'Requested allocation size is larger than allowed',
  [TPM_RC.NV_LOCKED]: 'NV access locked',
  [TPM_RC.NV_AUTHORIZATION]: 'NV access authorization fails in command actions',
  [TPM_RC.NV_UNINITIALIZED]:
    'an NV Index is used before being initialized or the state saved by TPM2_ShutdownSTATE could ' +
    'not be restored',
  [TPM_RC.NV_SPACE]: 'insufficient space for NV allocation',
  [TPM_RC.NV_DEFINED]: 'NV Index or persistent object already defined',
  [TPM_RC.BAD_CONTEXT]: 'context in TPM2_ContextLoad is not valid',
  [TPM_RC.CPHASH]: 'cpHash value already set or not correct for use',
  [TPM_RC.PARENT]: 'handle for parent is not a valid parent',
  [TPM_RC.NEEDS_TEST]: 'some function needs testing',
  [TPM_RC.NO_RESULT]:
    'returned when an internal function cannot process a request due to an unspecified problem. ' +
    'This code is usually related to invalid parameters that are not properly filtered by the ' +
    'input unmarshaling code',
  [TPM_RC.SENSITIVE]: 'the sensitive area did not unmarshal correctly after decryption',

  [TPM_RC.ASYMMETRIC]: 'asymmetric algorithm not supported or not correct',
  [TPM_RC.ATTRIBUTES]: 'inconsistent attributes',
  [TPM_RC.HASH]: 'hash algorithm not supported or not appropriate',
  [TPM_RC.VALUE]: 'value is out of range or is not correct for the context',
  [TPM_RC.HIERARCHY]: 'hierarchy is not enabled or is not correct for the use',
  [TPM_RC.KEY_SIZE]: 'key size is not supported',
  [TPM_RC.MGF]: 'mask generation function not supported',
  [TPM_RC.MODE]: 'mode of operation not supported',
  [TPM_RC.TYPE]: 'the type of the value is not appropriate for the use',
  [TPM_RC.HANDLE]: 'the handle is not correct for the use',
  [TPM_RC.KDF]: 'unsupported key derivation function or function not appropriate for use',
  [TPM_RC.RANGE]: 'value was out of allowed range',
  [TPM_RC.AUTH_FAIL]: 'the authorization HMAC check failed and DA counter incremented',
  [TPM_RC.NONCE]: 'invalid nonce size or nonce value mismatch',
  [TPM_RC.PP]: 'authorization requires assertion of PP',
  [TPM_RC.SCHEME]: 'unsupported or incompatible scheme',
  [TPM_RC.SIZE]: 'structure is the wrong size',
  [TPM_RC.SYMMETRIC]: 'unsupported symmetric algorithm or key size or not appropriate for instance',
  [TPM_RC.TAG]: 'incorrect structure tag',
  [TPM_RC.SELECTOR]: 'union selector is incorrect',
  [TPM_RC.INSUFFICIENT]:
    'the TPM was unable to unmarshal a value because there were not enough octets in the input buffer',
  [TPM_RC.SIGNATURE]: 'the signature is not valid',
  [TPM_RC.KEY]: 'key fields are not compatible with the selected use',
  [TPM_RC.POLICY_FAIL]: 'a policy check failed',
  [TPM_RC.INTEGRITY]: 'integrity check failed',
  [TPM_RC.TICKET]: 'invalid ticket',
  [TPM_RC.RESERVED_BITS]: 'reserved bits not set to zero as required',
  [TPM_RC.BAD_AUTH]: 'authorization failure without DA implications',
  [TPM_RC.EXPIRED]: 'the policy has expired',
  [TPM_RC.POLICY_CC]:
    'the commandCode in the policy is not the commandCode of the command or the command code in a ' +
    'policy command references a command that is not implemented',
  [TPM_RC.BINDING]: 'public and sensitive portions of an object are not cryptographically bound',
  [TPM_RC.CURVE]: 'curve not supported',
  [TPM_RC.ECC_POINT]: 'point is not on the required curve',

  [TPM_RC.CONTEXT_GAP]: 'gap for context ID is too large',
  [TPM_RC.OBJECT_MEMORY]: 'out of memory for object contexts',
  [TPM_RC.SESSION_MEMORY]: 'out of memory for session contexts',
  [TPM_RC.MEMORY]: 'out of shared objectsession memory or need space for internal operations',
  [TPM_RC.SESSION_HANDLES]: 'out of session handles',
  [TPM_RC.OBJECT_HANDLES]: 'out of object handles',
  [TPM_RC.LOCALITY]: 'bad locality',
  [TPM_RC.YIELDED]:
    'the TPM has suspended operation on the command forward progress was made and the command may be retried',
  [TPM_RC.CANCELED]: 'the command was canceled',
  [TPM_RC.TESTING]: 'TPM is performing selftests',
  ...referenceWarnings(TPM_RC.REFERENCE_H0, 'handle in the handle area references a transient object or session'),
  ...referenceWarnings(TPM_RC.REFERENCE_S0, 'authorization session handle references a session'),
  // tpm2-tss drops "authorization" from these two (and only these two).
  [TPM_RC.REFERENCE_S4]: 'the 5th session handle references a session that is not loaded',
  [TPM_RC.REFERENCE_S5]: 'the 6th session handle references a session that is not loaded',
  [TPM_RC.NV_RATE]: 'the TPM is rate limiting accesses to prevent wearout of NV',
  [TPM_RC.LOCKOUT]:
    'authorizations for objects subject to DA protection are not allowed at this time because the ' +
    'TPM is in DA lockout mode',
  [TPM_RC.RETRY]: 'the TPM was not able to start the command',
  [TPM_RC.NV_UNAVAILABLE]: 'the command may require writing of NV and NV is not current accessible',
};

/** The seven REFERENCE_H/S warnings differ only by their ordinal. */
function referenceWarnings(first: number, what: string): Record<number, string> {
  const ordinals = ['1st', '2nd', '3rd', '4th', '5th', '6th', '7th'];
  return Object.fromEntries(ordinals.map((o, i) => [first + i, `the ${o} ${what} that is not loaded`]));
}

/**
 * Descriptions of the TSS2_BASE_RC_* numbers 1..53 that tpm2-tss uses for its own layers
 * (fapi, esapi, sys, mu, tcti, policy). Only for rendering codes that come from a TSS.
 */
const TSS_DESCRIPTION: readonly string[] = [
  'Catch all for all errors not otherwise specified',
  "If called functionality isn't implemented",
  'A context structure is bad',
  "Passed in ABI version doesn't match called module's ABI version",
  "A pointer is NULL that isn't allowed to be NULL.",
  "A buffer isn't large enough",
  'Function called in the wrong order',
  'Fails to connect to next lower layer',
  'Operation timed out; function must be called again to be completed',
  'IO failure',
  'A parameter has a bad value',
  'Operation not permitted.',
  "Session structures were sent, but command doesn't use them or doesn't use the specified number of them",
  "If function called that uses decrypt parameter, but command doesn't support decrypt parameter.",
  "If function called that uses encrypt parameter, but command doesn't support decrypt parameter.",
  'If size of a parameter is incorrect',
  'Response is malformed',
  'Context not large enough',
  'Response is not long enough',
  'Unknown or unusable TCTI version',
  'Functionality not supported',
  'TCTI context is bad',
  'Failed to allocate memory',
  'The ESYS_TR resource object is bad',
  'Multiple sessions were marked with attribute decrypt',
  'Multiple sessions were marked with attribute encrypt',
  'Authorizing the TPM response failed',
  'No config is available',
  'The provided path is bad',
  'The object is not deletable',
  'The provided path already exists',
  'The key was not found',
  'Signature verification failed',
  'Hashes mismatch',
  'Key is not duplicatable',
  'The path was not found',
  'No certificate',
  'No PCR',
  'PCR not resettable',
  'The template is bad',
  'Authorization failed',
  'Authorization is unknown',
  'NV is not readable',
  'NV is too small',
  'NV is not writable',
  'The policy is unknown',
  'The NV type is wrong',
  'The name already exists',
  'No TPM available',
  'The key is bad',
  'No handle provided',
  'Provisioning was not executed.',
  'Already provisioned',
];

/**
 * tpm2-tss's layer table: name and how the low 16 bits are rendered. Layer 11 ("rmt") carries
 * TPM-format codes made up by a resource manager; layers without a renderer, and unnamed ones
 * (printed as their decimal number), show the whole code in hex.
 */
const LAYERS: ReadonlyMap<number, { name: string; render?: 'tpm' | 'tss' }> = new Map([
  [0, { name: 'tpm', render: 'tpm' }],
  [6, { name: 'fapi', render: 'tss' }],
  [7, { name: 'esapi', render: 'tss' }],
  [8, { name: 'sys', render: 'tss' }],
  [9, { name: 'mu', render: 'tss' }],
  [10, { name: 'tcti', render: 'tss' }],
  [11, { name: 'rmt', render: 'tpm' }],
  [12, { name: 'rm' }],
  [13, { name: 'policy', render: 'tss' }],
]);

export type RcKind =
  | 'success'
  | 'error'
  | 'warning'
  | 'handle'
  | 'parameter'
  | 'session'
  | 'format1'
  | 'vendor'
  | 'layer';

export interface RcInfo {
  /** The code as an unsigned 32-bit number. */
  rc: number;
  /**
   * For layer 0: success, format-zero error/warning/vendor, or format-one handle/parameter/session
   * (`format1` when it names none). Any non-zero layer: `layer`.
   */
  kind: RcKind;
  /**
   * The code with its index bits stripped (0x08B for 0x18B); format-zero codes have none (0x101).
   * For TSS layers: the low 16 bits (the TSS2_BASE_RC_* number).
   */
  base: number;
  /** `TPM_RC_HANDLE` etc. when `base` is a code named in Part 2 (TPM-format layers only). */
  baseName?: string;
  /**
   * 1-based handle, parameter or session number; undefined when the code names none. Per the
   * specification a parameter number has 4 bits (1..15); tpm2-tss prints only the low 3 bits, so
   * 0x9C1 is `index` 9 but its text reads `parameter(1)`.
   */
  index?: number;
  /** Bits 16..23 of the code: 0 for the TPM, 6..13 for tpm2-tss's own layers. */
  layer: number;
  /** tpm2-tss's description of the base code, when it has one. */
  description?: string;
  /** Exactly what tpm2-tss's Tss2_RC_Decode prints. */
  text: string;
}

/** Upper-case hex without padding, as C's `%X`. */
const hex = (n: number): string => n.toString(16).toUpperCase();

/** Any number to a UINT32 without bit operators (they are signed 32-bit in JS). */
function toUint32(rc: number): number {
  if (!Number.isFinite(rc)) return 0;
  const n = Math.trunc(rc) % 0x1_0000_0000;
  return n < 0 ? n + 0x1_0000_0000 : n === 0 ? 0 : n; // `n === 0` folds -0 into 0
}

type TpmPart = Pick<RcInfo, 'kind' | 'base' | 'baseName' | 'index' | 'description'> & { body: string };

/** The TPM-format part of a code; `err` is the low 16 bits, so bit operators are safe here. */
function decodeTpmBits(err: number): TpmPart {
  if (err === 0) return { kind: 'success', base: 0, baseName: NAME_OF.get(0), body: 'success' };

  if (err & 0x80) {
    // Format one. tpm2-tss has a table for error numbers 0..0x27; holes in it print "(null)".
    const num = err & 0x3f;
    const n = (err >> 8) & 0xf;
    const isParam = (err & 0x40) !== 0;
    const base = err & 0xf0bf;
    const description = num < 0x28 ? DESCRIPTION[0x80 | num] : undefined;
    const where = isParam ? 'parameter' : n & 8 ? 'session' : 'handle';
    const kind: RcKind = isParam ? 'parameter' : n === 0 ? 'format1' : where;
    const index = (isParam ? n : n & 7) || undefined;
    const shown = n & 7; // tpm2-tss's quirk: 3 bits, even for a parameter number
    const what = num < 0x28 ? (description ?? '(null)') : `unknown error num: 0x${hex(num)}`;
    return { kind, base, baseName: NAME_OF.get(base), index, description, body: `${where}(${shown || 'unk'}):${what}` };
  }

  // Format zero. tpm2-tss looks only at the error number and the V, T and S bits.
  const isWarn = (err & 0x800) !== 0;
  const isVer2 = (err & 0x100) !== 0;
  const isVendor = (err & 0x400) !== 0;
  const prefix = `${isWarn ? 'warn' : 'error'}(${isVer2 ? '2.0' : '1.2'}): `;
  const part = { base: err, baseName: NAME_OF.get(err) };
  if (isVer2 && isVendor) {
    return { ...part, kind: 'vendor', body: `${prefix}Vendor specific error: 0x${hex(err & 0x7f)}` };
  }
  const kind: RcKind = isWarn ? 'warning' : 'error';
  if (!isVer2) return { ...part, kind, body: `${prefix}unknown version 1.2 error code` };
  const description = DESCRIPTION[err & 0xd7f];
  // No text for this number: tpm2-tss prints the bare 16-bit code instead (tpm:0x917).
  return { ...part, kind, description, body: description ? prefix + description : `0x${hex(err)}` };
}

/** Decodes any UINT32 response code; never throws. */
export function decodeRc(rc: number): RcInfo {
  const u = toUint32(rc);
  const layer = Math.floor(u / 0x10000) % 0x100;
  const err = u % 0x10000;
  const entry = LAYERS.get(layer);
  const prefix = `${entry?.name ?? layer}:`;

  if (entry?.render === 'tpm') {
    const { body, ...part } = decodeTpmBits(err);
    return dropUndefined({ rc: u, ...part, kind: layer === 0 ? part.kind : 'layer', layer, text: prefix + body });
  }
  if (entry?.render === 'tss') {
    const description = TSS_DESCRIPTION[err - 1];
    const body = err === 0 ? 'success' : (description ?? `0x${hex(err)}`);
    return dropUndefined({ rc: u, kind: 'layer', base: err, layer, description, text: prefix + body });
  }
  // No renderer: the whole code in hex (tpm2-tss >= 3.2.2, after the CVE-2023-22745 fix).
  return { rc: u, kind: 'layer', base: err, layer, text: `${prefix}0x${hex(u)}` };
}

/** Keeps optional fields absent rather than present-and-undefined (tidy for toEqual / JSON). */
function dropUndefined(info: RcInfo): RcInfo {
  for (const k of ['baseName', 'index', 'description'] as const) if (info[k] === undefined) delete info[k];
  return info;
}

/** tpm2-tss's text for a response code, e.g. `tpm:parameter(3):invalid ticket`. */
export function rcText(rc: number): string {
  return decodeRc(rc).text;
}

/** The TPM-format base code of `rc`, or undefined when a TSS layer's numbering applies. */
function tpmBase(rc: number): number | undefined {
  const info = decodeRc(rc);
  return LAYERS.get(info.layer)?.render === 'tpm' ? info.base : undefined;
}

const RETRYABLE: ReadonlySet<number> = new Set([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING]);

/** True for the warnings after which the same command may simply be sent again (after a pause). */
export function isRetryable(rc: number): boolean {
  const base = tpmBase(rc);
  return base !== undefined && RETRYABLE.has(base);
}

/** A TPM command completed with a non-success response code. */
export class TpmError extends Error {
  override readonly name = 'TpmError';
  readonly rc: number;
  readonly base: number;
  readonly baseName: string | undefined;
  readonly kind: RcKind;
  readonly index: number | undefined;
  readonly layer: number;
  readonly description: string | undefined;
  /** The command that failed, e.g. 'Sign', when known. */
  readonly command?: string;
  readonly commandCode?: number;

  constructor(rc: number, command?: { name: string; code: number }) {
    const info = decodeRc(rc);
    super(info.text);
    this.rc = info.rc;
    this.base = info.base;
    this.baseName = info.baseName;
    this.kind = info.kind;
    this.index = info.index;
    this.layer = info.layer;
    this.description = info.description;
    if (command) {
      this.command = command.name;
      this.commandCode = command.code;
    }
  }

  /**
   * Whether this is the given TPM code regardless of its handle/parameter/session number:
   * `err.is(TPM_RC.HANDLE)` holds for 0x18B and 0x28B. TSS-layer codes never match.
   */
  is(code: number): boolean {
    const mine = LAYERS.get(this.layer)?.render === 'tpm' ? this.base : undefined;
    return mine !== undefined && mine === tpmBase(code);
  }
}
