/**
 * Type-level checks of the schema: TPM unions decode to discriminated unions that narrow on
 * their selector. This file is never run; it is compiled — by `tsc --noEmit -p .` and by
 * test/schema/narrowing.test.ts, which fails on any diagnostic here. Each `@ts-expect-error`
 * line must BE an error (an unused one is itself an error), so both directions are checked:
 * what narrowing allows, and what it forbids.
 */
import { expectTypeOf } from 'vitest';
import { TPM_ALG, TPM_CAP, objectAttrs, sessionAttrs, type TpmaObjectFlag } from '../../src/tpm/constants.js';
import {
  TPMI_ALG_HASH,
  TPMI_ALG_PUBLIC,
  type EccPublic,
  type RsaPublic,
  type TPMS_CAPABILITY_DATA,
  type TPMT_HA,
  type TPMT_KDF_SCHEME,
  type TPMT_KEYEDHASH_SCHEME,
  type TPMT_PUBLIC,
  type TPMT_RSA_SCHEME,
  type TPMT_SIG_SCHEME,
  type TPMT_SIGNATURE,
  type TPMT_SYM_DEF,
  type TPMT_SYM_DEF_OBJECT,
  type TpmiAlgHash,
} from '../../src/tpm/structures.js';
import { oneOf, u16, type Infer } from '../../src/tpm/wire/codec.js';

declare const pub: TPMT_PUBLIC;
declare const sig: TPMT_SIGNATURE;
declare const cap: TPMS_CAPABILITY_DATA;

// ---------------------------------------------------------------- TPMT_PUBLIC by `type`

export function publicNarrows(): void {
  if (pub.type === TPM_ALG.RSA) {
    expectTypeOf(pub.parameters.keyBits).toEqualTypeOf<number>();
    expectTypeOf(pub.parameters.exponent).toEqualTypeOf<number>();
    expectTypeOf(pub.unique).toEqualTypeOf<Uint8Array>();
    // @ts-expect-error an RSA key has no curve
    void pub.parameters.curveID;
    // @ts-expect-error an RSA key's unique is the modulus, not a point
    void pub.unique.x;
  } else if (pub.type === TPM_ALG.ECC) {
    expectTypeOf(pub.parameters.curveID).toEqualTypeOf<number>();
    expectTypeOf(pub.unique.x).toEqualTypeOf<Uint8Array>();
    // @ts-expect-error an ECC key has no key bits
    void pub.parameters.keyBits;
  } else if (pub.type === TPM_ALG.SYMCIPHER) {
    expectTypeOf(pub.parameters.sym.algorithm).toBeNumber();
    // @ts-expect-error a symmetric cipher has no asymmetric scheme
    void pub.parameters.scheme;
  } else {
    // Only KEYEDHASH is left: the selector's codec (TPMI_ALG_PUBLIC) allows just these four.
    expectTypeOf(pub.type).toEqualTypeOf<typeof TPM_ALG.KEYEDHASH>();
    expectTypeOf(pub.parameters.scheme.scheme).toEqualTypeOf<typeof TPM_ALG.HMAC | typeof TPM_ALG.XOR | typeof TPM_ALG.NULL>();
  }
  // Before narrowing, an arm's field is not reachable.
  // @ts-expect-error keyBits exists only on the RSA arm
  void pub.parameters.keyBits;
}

// A value of one arm with another arm's fields does not type-check.
export const mixed: TPMT_PUBLIC = {
  type: TPM_ALG.RSA,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: 0,
  authPolicy: new Uint8Array(0),
  parameters: {
    symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
    scheme: { scheme: TPM_ALG.NULL, details: null },
    keyBits: 2048,
    exponent: 0,
  },
  // @ts-expect-error an RSA public area's unique is bytes, not an ECC point
  unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
};

expectTypeOf<RsaPublic['type']>().toEqualTypeOf<typeof TPM_ALG.RSA>();
expectTypeOf<EccPublic['unique']>().toEqualTypeOf<{ x: Uint8Array; y: Uint8Array }>();
expectTypeOf<TPMT_PUBLIC['type']>().toEqualTypeOf<Infer<typeof TPMI_ALG_PUBLIC>>();

// ---------------------------------------------------------------- TPMT_SIGNATURE by `sigAlg`

export function signatureNarrows(): void {
  if (sig.sigAlg === TPM_ALG.RSASSA || sig.sigAlg === TPM_ALG.RSAPSS) {
    expectTypeOf(sig.signature.sig).toEqualTypeOf<Uint8Array>();
    // @ts-expect-error an RSA signature has no r
    void sig.signature.signatureR;
  } else if (sig.sigAlg === TPM_ALG.ECDSA) {
    expectTypeOf(sig.signature.signatureR).toEqualTypeOf<Uint8Array>();
  } else if (sig.sigAlg === TPM_ALG.HMAC) {
    // The HMAC arm's hash is `hash`, as in the other arms (it was `hashAlg`).
    expectTypeOf(sig.signature.hash).toEqualTypeOf<TpmiAlgHash>();
    expectTypeOf(sig.signature.digest).toEqualTypeOf<Uint8Array>();
  } else if (sig.sigAlg === TPM_ALG.NULL) {
    expectTypeOf(sig.signature).toEqualTypeOf<null>();
  }
  // Every arm but NULL has `hash`: one test narrows them all.
  if (sig.sigAlg !== TPM_ALG.NULL) expectTypeOf(sig.signature.hash).toEqualTypeOf<TpmiAlgHash>();
  // @ts-expect-error NULL's arm is null
  void sig.signature.hash;
}

// ---------------------------------------------------------------- TPMS_CAPABILITY_DATA by `capability`

export function capabilityNarrows(): void {
  if (cap.capability === TPM_CAP.HANDLES) expectTypeOf(cap.data).toEqualTypeOf<number[]>();
  if (cap.capability === TPM_CAP.TPM_PROPERTIES) {
    expectTypeOf(cap.data).toEqualTypeOf<{ property: number; value: number }[]>();
    // @ts-expect-error properties are not numbers
    const n: number[] = cap.data;
    void n;
  }
  if (cap.capability === TPM_CAP.ALGS) expectTypeOf(cap.data[0]!.alg).toBeNumber();
}

// ---------------------------------------------------------------- schemes, symmetric, TPMT_HA

declare const sigScheme: TPMT_SIG_SCHEME;
declare const rsaScheme: TPMT_RSA_SCHEME;
declare const kdf: TPMT_KDF_SCHEME;
declare const keyedHash: TPMT_KEYEDHASH_SCHEME;
declare const sym: TPMT_SYM_DEF;
declare const symObject: TPMT_SYM_DEF_OBJECT;
declare const ha: TPMT_HA;

export function schemesNarrow(): void {
  if (sigScheme.scheme === TPM_ALG.ECDAA) expectTypeOf(sigScheme.details.count).toEqualTypeOf<number>();
  if (sigScheme.scheme === TPM_ALG.NULL) expectTypeOf(sigScheme.details).toEqualTypeOf<null>();
  // @ts-expect-error only ECDAA has a count
  if (sigScheme.scheme === TPM_ALG.ECDSA) void sigScheme.details.count;
  if (rsaScheme.scheme === TPM_ALG.RSAES) expectTypeOf(rsaScheme.details).toEqualTypeOf<null>();
  if (rsaScheme.scheme === TPM_ALG.OAEP) expectTypeOf(rsaScheme.details.hashAlg).toEqualTypeOf<TpmiAlgHash>();
  if (kdf.scheme === TPM_ALG.MGF1) expectTypeOf(kdf.details.hashAlg).toEqualTypeOf<TpmiAlgHash>();
  if (keyedHash.scheme === TPM_ALG.XOR) expectTypeOf(keyedHash.details.kdf).toBeNumber();
  if (sym.algorithm === TPM_ALG.XOR) {
    // XOR's "key bits" is a hash algorithm, and it has no mode.
    expectTypeOf(sym.keyBits).toEqualTypeOf<TpmiAlgHash>();
    expectTypeOf(sym.mode).toEqualTypeOf<null>();
  }
  if (sym.algorithm === TPM_ALG.AES) expectTypeOf(sym.keyBits).toEqualTypeOf<number>();
  // @ts-expect-error TPMT_SYM_DEF_OBJECT has no XOR arm
  if (symObject.algorithm === TPM_ALG.XOR) void symObject;
  if (ha.hashAlg === TPM_ALG.SHA256) expectTypeOf(ha.digest).toEqualTypeOf<Uint8Array>();
}

// ---------------------------------------------------------------- typed leaves

// oneOf keeps its values' literal types.
const ODD = oneOf('ODD', u16, [1, 3, 5]);
expectTypeOf<Infer<typeof ODD>>().toEqualTypeOf<1 | 3 | 5>();
expectTypeOf<Infer<typeof TPMI_ALG_HASH>>().toEqualTypeOf<TpmiAlgHash>();
// @ts-expect-error NULL is not a TPMI_ALG_HASH
export const notAHash: TpmiAlgHash = TPM_ALG.NULL;
// @ts-expect-error a bare number is not a TPMI_ALG_HASH either (narrow it with isHashAlg)
export const loose: TpmiAlgHash = 0x0b as number;

// Attribute sets: flag names are checked.
objectAttrs.of('fixedTPM', 'sign');
// @ts-expect-error not a TPMA_OBJECT flag
objectAttrs.of('fixedTPM', 'sing');
// @ts-expect-error a session flag is not an object flag
objectAttrs.has(0, 'continueSession');
sessionAttrs.has(0, 'continueSession');
expectTypeOf(objectAttrs.flags(0)).toEqualTypeOf<TpmaObjectFlag[]>();
