/**
 * The schema at run time: variants keep the bytes, typed leaves tell the decoder what a number
 * is (never the field's name), STRUCTURES is fixed at its declaration, attribute sets and
 * TPMI_ALG_HASH narrowing, and GetCapability answers checked against what was asked.
 * Expected values come from Part 2 (bit positions, algorithm ids) and hand-written bytes.
 */
import { describe, expect, it } from 'vitest';
import { COMMANDS, GetCapability } from '../../src/tpm/commands.js';
import { marshalResponse } from '../../src/tpm/command.js';
import { TPM_ALG, TPM_CAP, objectAttrs, sessionAttrs } from '../../src/tpm/constants.js';
import { decodeStructure, encodeStructure, roundtrip, toView } from '../../src/tpm/decode/index.js';
import { leafName } from '../../src/tpm/decode/names.js';
import { akEccTemplate, akRsaTemplate, AK_ATTRIBUTES, EK_ATTRIBUTES, SRK_ATTRIBUTES } from '../../src/tpm/keys/templates.js';
import { signatureHash } from '../../src/tpm/keys/signature.js';
import { getTpmProperty, listHandles } from '../../src/tpm/ops/capability.js';
import { STRUCTURES, TPM_ALG_ID, TPM_HANDLE, TPMT_SIGNATURE, hashAlgOf, isHashAlg } from '../../src/tpm/structures.js';
import { Tpm } from '../../src/tpm/tpm.js';
import type { Transport } from '../../src/tpm/transport/types.js';
import { decode, encode, fixed, struct, u16, union, variant, yesNo, type AnyCodec } from '../../src/tpm/wire/codec.js';
import { TpmDecodeError, TpmEncodeError } from '../../src/tpm/wire/errors.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

describe('STRUCTURES', () => {
  it('is complete at its declaration and cannot be changed afterwards', () => {
    expect(Object.keys(STRUCTURES)).toContain('TPMT_TK_AUTH');
    expect(Object.isFrozen(STRUCTURES)).toBe(true);
    const target: Record<string, unknown> = STRUCTURES;
    expect(() => {
      target.TPMT_EXTRA = u16;
    }).toThrow(TypeError);
    expect(Object.keys(STRUCTURES)).not.toContain('TPMT_EXTRA');
  });
});

describe('variant and struct', () => {
  const arms = { 1: fixed(1), 2: fixed(2) } as const;

  it('a variant has the same bytes as the struct it replaces', () => {
    const V = variant('V', 'sel', { sel: u16, n: u16, body: union('U', 'sel', arms) });
    const b = encode(V, { sel: 2, n: 7, body: Uint8Array.of(0xaa, 0xbb) });
    expect(hex(b)).toBe('00020007aabb');
    expect(decode(V, b)).toEqual({ sel: 2, n: 7, body: Uint8Array.of(0xaa, 0xbb) });
  });

  it('struct refuses a union field; variant refuses a union on another or a later selector, or none', () => {
    expect(() => struct('S', { sel: u16, body: union('U', 'sel', arms) })).toThrow(/field body is a union.*use variant/);
    expect(() => variant('V', 'sel', { sel: u16, other: u16, body: union('U', 'other', arms) })).toThrow(/must select on the earlier field sel/);
    expect(() => variant('V', 'sel', { body: union('U', 'sel', arms), sel: u16 })).toThrow(/must select on the earlier field sel/);
    expect(() => variant('V', 'sel', { sel: u16, n: u16 })).toThrow(/no union field/);
    expect(() => variant('V', 'nope' as 'sel', { sel: u16, body: union('U', 'sel', arms) })).toThrow(/no selector field nope/);
  });
});

describe('TPMT_SIGNATURE: the HMAC arm names its hash `hash`, as the other arms', () => {
  // sigAlg TPM_ALG_HMAC (0x0005), hash SHA-256 (0x000b), 32 digest bytes (Part 2 §11.3.4, §10.3.2).
  const wire = bytes('0005 000b' + '11'.repeat(32));

  it('decodes to { hash, digest } with the same bytes both ways', () => {
    const sig = decode(TPMT_SIGNATURE, wire);
    expect(sig).toEqual({ sigAlg: TPM_ALG.HMAC, signature: { hash: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(0x11) } });
    expect(hex(encode(TPMT_SIGNATURE, sig))).toBe(hex(wire));
    expect(signatureHash(sig)).toBe(TPM_ALG.SHA256);
  });

  it('the decoder tool shows it as hash/hashName and reads it back', () => {
    const view = decodeStructure('TPMT_SIGNATURE', wire);
    expect(view.value).toEqual({
      sigAlg: TPM_ALG.HMAC,
      sigAlgName: 'TPM_ALG_HMAC',
      signature: { hash: TPM_ALG.SHA256, hashName: 'TPM_ALG_SHA256', digest: new Uint8Array(32).fill(0x11) },
    });
    expect(hex(encodeStructure(view))).toBe(hex(wire));
  });
});

describe('typed leaves: the decoder names a number by what its codec says it is', () => {
  it('an algorithm or handle field is named whatever it is called; a plain u16 called hashAlg is not', () => {
    const S = struct('S', { hashAlg: u16, whatever: TPM_ALG_ID, anything: TPM_HANDLE });
    const view = toView(S, { hashAlg: 0x000b, whatever: 0x000b, anything: 0x40000001 });
    // Before the leaves carried their meaning, `hashAlg` got a name from its field name and
    // `whatever`/`anything` none.
    expect(view).toEqual({ hashAlg: 0x000b, whatever: 0x000b, whateverName: 'TPM_ALG_SHA256', anything: '0x40000001', anythingName: 'TPM_RH_OWNER' });
  });

  it('TPMS_CONTEXT.savedHandle is shown as a handle, like hierarchy beside it', () => {
    // sequence (UINT64), savedHandle 0x80000001, hierarchy TPM_RH_OWNER, a 2-byte context blob.
    const wire = bytes('0000000000000005 80000001 40000001 0002 abcd');
    const view = decodeStructure('TPMS_CONTEXT', wire);
    expect(view.value).toMatchObject({ savedHandle: '0x80000001', hierarchy: '0x40000001', hierarchyName: 'TPM_RH_OWNER' });
    expect(hex(encodeStructure(view))).toBe(hex(wire));
    expect(roundtrip('structure', view, wire)).toEqual({ identical: true, size: wire.length });
  });

  it('TPMT_PUBLIC leaves: type, nameAlg and scheme hashes named, attributes as flags', () => {
    const view = decodeStructure('TPMT_PUBLIC', encode(STRUCTURES.TPMT_PUBLIC!, akRsaTemplate(TPM_ALG.SHA384)));
    expect(view.value).toMatchObject({
      typeName: 'TPM_ALG_RSA',
      nameAlgName: 'TPM_ALG_SHA256',
      objectAttributes: '0x00050072',
      objectAttributesFlags: 'fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign',
      parameters: { scheme: { schemeName: 'TPM_ALG_RSASSA', details: { hashAlgName: 'TPM_ALG_SHA384' } }, keyBits: 2048 },
    });
  });
});

describe('attribute sets', () => {
  it('TPMA_OBJECT flags by name give the spec bits (Part 2 §8.3) and read back in bit order', () => {
    // tpm2-tools' documented values for its default AK, EK and primary.
    expect(AK_ATTRIBUTES).toBe(0x00050072);
    expect(EK_ATTRIBUTES).toBe(0x000300b2);
    expect(SRK_ATTRIBUTES).toBe(0x00030472);
    expect(objectAttrs.of('sign', 'fixedTPM')).toBe(0x00040002);
    expect(objectAttrs.flags(0x00030472)).toEqual(['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'noDA', 'restricted', 'decrypt']);
    expect(objectAttrs.has(0x00050072, 'restricted')).toBe(true);
    expect(objectAttrs.has(0x00050072, 'decrypt')).toBe(false);
  });

  it('reserved bits are reported, bit 31 included (no sign trouble)', () => {
    expect(objectAttrs.unknownBits(0x80000001 + 0x40)).toBe(0x80000001);
    expect(objectAttrs.flags(0x80000040)).toEqual(['userWithAuth']);
    expect(sessionAttrs.of('continueSession', 'encrypt')).toBe(0x41);
    expect(sessionAttrs.unknownBits(0x18)).toBe(0x18);
  });
});

describe('TPMI_ALG_HASH at the boundary', () => {
  it('isHashAlg narrows the hash ids of Part 2 §9.27 and nothing else', () => {
    const hashes = [0x0004, 0x000b, 0x000c, 0x000d, 0x0012, 0x0027, 0x0028, 0x0029];
    for (let a = 0; a <= 0x50; a++) expect(isHashAlg(a)).toBe(hashes.includes(a));
  });

  it('a template with a non-hash is refused with the encoder error, naming the field', () => {
    expect(hashAlgOf(TPM_ALG.SHA256)).toBe(TPM_ALG.SHA256);
    expect(() => akRsaTemplate(TPM_ALG.NULL)).toThrow(TpmEncodeError);
    expect(() => akEccTemplate(0x1234)).toThrow(/scheme\.details\.hashAlg: TPMI_ALG_HASH: 0x1234 is not an allowed value/);
  });
});

describe('GetCapability: the answer must be the capability asked for', () => {
  /** A TPM that answers every command with `reply`. */
  function tpmAnswering(reply: Uint8Array): Tpm {
    const t: Transport = { description: 'fake', send: async () => reply, close: async () => {} };
    return new Tpm(t);
  }
  const properties = marshalResponse(GetCapability, {
    moreData: false,
    capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, data: [{ property: 0x10d, value: 2048 }] },
  });
  const handles = marshalResponse(GetCapability, { moreData: false, capabilityData: { capability: TPM_CAP.HANDLES, data: [0x81000001] } });

  it('the matching answers are read', async () => {
    expect(await getTpmProperty(tpmAnswering(properties), 0x10d)).toBe(2048);
    expect(await listHandles(tpmAnswering(handles), 0x81000000, 0x81ffffff)).toEqual([0x81000001]);
  });

  it('another capability is a TpmDecodeError saying which', async () => {
    await expect(listHandles(tpmAnswering(properties), 0x81000000, 0x81ffffff)).rejects.toThrow(TpmDecodeError);
    await expect(listHandles(tpmAnswering(properties), 0x81000000, 0x81ffffff)).rejects.toThrow(/answered capability 0x00000006, not the 0x00000001 asked for/);
    await expect(getTpmProperty(tpmAnswering(handles), 0x10d)).rejects.toThrow(/answered capability 0x00000001, not the 0x00000006/);
  });
});

describe('every integer in the schema says what it is, or is a plain quantity', () => {
  /** Fields decoded by an integer codec without a leaf name, as "STRUCTURE.field". */
  function plainIntegers(): string[] {
    const out = new Set<string>();
    const seen = new Set<AnyCodec>();
    const walk = (c: AnyCodec, where: string): void => {
      const m = c.meta;
      if ((m.kind === 'u8' || m.kind === 'u16' || m.kind === 'u32' || m.kind === 'i32' || m.kind === 'oneOf') && leafName(c) === undefined) {
        if (c !== yesNo) out.add(where);
        return;
      }
      if (seen.has(c)) return;
      seen.add(c);
      if (m.kind === 'struct') for (const [k, f] of Object.entries(m.fields)) walk(f, `${m.name}.${k}`);
      else if (m.kind === 'union') for (const a of m.arms.values()) walk(a, where);
      else if (m.kind === 'sized') walk(m.inner, where);
      else if (m.kind === 'list') walk(m.item, `${m.name}[]`);
    };
    for (const c of Object.values(STRUCTURES)) walk(c, '');
    for (const d of COMMANDS.values()) {
      walk(d.params, '');
      walk(d.response, '');
    }
    return [...out].sort();
  }

  it('the bare numbers are sizes, counts, key lengths and values, nothing with a name table', () => {
    expect(plainIntegers()).toEqual(
      [
        'GetCapability.parameters.property', // depends on the capability: a handle, a TPM_PT, ...
        'GetCapability.parameters.propertyCount',
        'GetRandom.parameters.bytesRequested',
        'PolicySecret.parameters.expiration',
        'TPMS_RSA_PARMS.exponent',
        'TPMS_RSA_PARMS.keyBits',
        'TPMS_SCHEME_ECDAA.count',
        'TPMS_TAGGED_PROPERTY.value',
        'TPMT_SYM_DEF.keyBits', // AES/SM4/CAMELLIA key bits (XOR's arm is a TPMI_ALG_HASH)
        'TPMT_SYM_DEF_OBJECT.keyBits',
        'NV_Read.parameters.offset', // octets into the index
        'NV_Read.parameters.size',
        'PCR_Read.response.pcrUpdateCounter',
        'TPMS_CLOCK_INFO.resetCount',
        'TPMS_CLOCK_INFO.restartCount',
        'TPMS_NV_CERTIFY_INFO.offset',
        'TPMS_NV_PUBLIC.dataSize',
      ].sort(),
    );
  });
});
