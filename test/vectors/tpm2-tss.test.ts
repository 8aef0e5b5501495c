/**
 * Byte-exact agreement with an independent stack: every command recorded from tpm2-tss
 * against swtpm is (1) rebuilt from its meaning with our descriptors and templates,
 * (2) decoded and re-encoded to the same bytes; every response decodes to what tpm2-tss
 * decoded (Names, public areas, PEM, signatures, tickets, response codes) and re-encodes
 * to the same bytes.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadVectors } from '../helpers/vectors.js';
import {
  COMMANDS,
  Create,
  CreatePrimary,
  EvictControl,
  FlushContext,
  GetCapability,
  GetRandom,
  Hash,
  HashSequenceStart,
  Load,
  PolicyGetDigest,
  PolicySecret,
  ReadPublic,
  SequenceComplete,
  SequenceUpdate,
  Sign,
  StartAuthSession,
} from '../../src/tpm/commands.js';
import {
  marshalCommand,
  marshalResponse,
  passwordAuth,
  policyAuth,
  remarshalCommand,
  unmarshalCommand,
  unmarshalResponse,
  type CommandDescriptor,
} from '../../src/tpm/command.js';
import { TPM_ALG, TPM_CAP, TPM_RH, TPM_SE, TPM_ST, hex32 } from '../../src/tpm/constants.js';
import { TPM2B_PRIVATE, TPM2B_PUBLIC, TPMT_SIGNATURE, type TPMT_PUBLIC, type TPMT_SIGNATURE as Sig } from '../../src/tpm/structures.js';
import { encode } from '../../src/tpm/wire/codec.js';
import { TpmError } from '../../src/tpm/rc.js';
import { objectName, publicToPem } from '../../src/tpm/keys/public.js';
import { EK_POLICY_A_SHA256, akEccTemplate, akRsaTemplate, ekRsaTemplate, srkRsaTemplate } from '../../src/tpm/keys/templates.js';

interface Vector {
  name: string;
  commandCode: string;
  command: string;
  response: string;
  decoded: Record<string, any>;
}
const { vectors } = loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm.json');

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const descriptorOf = (v: Vector) => {
  const d = COMMANDS.get(Number(v.commandCode));
  if (!d) throw new Error(`no descriptor for ${v.commandCode}`);
  return d as CommandDescriptor<any, any, any, any>;
};
const byName = (prefix: string) => vectors.filter((v) => v.name.startsWith(prefix));
const sessionsIn = (v: Vector) => unmarshalCommand(descriptorOf(v), unhex(v.command)).auths;
const decodeResponse = (v: Vector) =>
  unmarshalResponse(descriptorOf(v), unhex(v.response), sessionsIn(v).length).output as Record<string, any>;

/** Compares a decoded TPMT_PUBLIC with tpm2-tss's view of it. */
function expectPublic(pub: TPMT_PUBLIC, want: Record<string, any>) {
  expect(pub.type).toBe(want.type);
  expect(pub.nameAlg).toBe(want.nameAlg);
  expect(hex32(pub.objectAttributes)).toBe(want.objectAttributes);
  expect(hex(pub.authPolicy)).toBe(want.authPolicy);
  expect(hex(encode(TPM2B_PUBLIC, pub))).toBe(want.marshalled);
  // `want.rsa`/`want.ecc` say which key tss saw; the type narrows to that key's arms.
  expect(pub.type).toBe(want.rsa ? TPM_ALG.RSA : want.ecc ? TPM_ALG.ECC : pub.type);
  if (pub.type === TPM_ALG.RSA) {
    const p = pub.parameters;
    expect(p.symmetric.algorithm).toBe(want.rsa.symmetric);
    expect(p.scheme.scheme).toBe(want.rsa.scheme);
    expect(p.keyBits).toBe(want.rsa.keyBits);
    expect(p.exponent).toBe(want.rsa.exponent);
    expect(hex(pub.unique)).toBe(want.rsa.modulus);
  }
  if (pub.type === TPM_ALG.ECC) {
    const p = pub.parameters;
    expect(p.symmetric.algorithm).toBe(want.ecc.symmetric);
    expect(p.scheme.scheme).toBe(want.ecc.scheme);
    expect(p.curveID).toBe(want.ecc.curveID);
    expect(hex(pub.unique.x)).toBe(want.ecc.x);
    expect(hex(pub.unique.y)).toBe(want.ecc.y);
  }
  expect(publicToPem(pub)).toBe(want.pem);
}

function expectSignature(sig: Sig, want: Record<string, any>) {
  expect(sig.sigAlg).toBe(want.sigAlg);
  expect(hex(encode(TPMT_SIGNATURE, sig))).toBe(want.marshalled);
  if (sig.sigAlg === TPM_ALG.NULL) throw new Error('a NULL signature');
  const s = sig.signature;
  expect(s.hash).toBe(want.hash);
  if (want.sig) expect('sig' in s ? hex(s.sig) : 'not an RSA signature').toBe(want.sig);
  if (want.r) {
    expect('signatureR' in s ? [hex(s.signatureR), hex(s.signatureS)] : 'not an ECC signature').toEqual([want.r, want.s]);
  }
}

/** nonceTPM returned by the last StartAuthSession recorded before vector `v`. */
function nonceTPMBefore(v: Vector): Uint8Array {
  const i = vectors.indexOf(v);
  const sas = vectors.slice(0, i).reverse().find((x) => x.name.startsWith('StartAuthSession'))!;
  return decodeResponse(sas).nonceTPM;
}
const ekName = () => decodeResponse(vectors.find((x) => x.name.startsWith('CreatePrimary(endorsement'))!).name as Uint8Array;

const emptyCreate = { inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, outsideInfo: new Uint8Array(0), creationPCR: [] };

describe('tpm2-tss vectors: every frame decodes and re-encodes byte for byte', () => {
  it.each(vectors.map((v, i) => [`${i} ${v.name}`, v] as const))('%s', (_n, v) => {
    const cmd = descriptorOf(v);
    const frame = unhex(v.command);
    const d = unmarshalCommand(cmd, frame);
    expect(hex(remarshalCommand(cmd, d))).toBe(v.command);
    const response = unhex(v.response);
    const rc = new DataView(response.buffer).getUint32(6);
    if (rc !== 0) {
      expect(() => unmarshalResponse(cmd, response, d.auths.length)).toThrow(TpmError);
      return;
    }
    const { output, auths } = unmarshalResponse(cmd, response, d.auths.length);
    expect(hex(marshalResponse(cmd, output, auths))).toBe(v.response);
  });
});

describe('tpm2-tss vectors: commands built from their meaning', () => {
  const built: Record<string, (v: Vector) => Uint8Array> = {
    GetRandom: () => marshalCommand(GetRandom, { bytesRequested: 16 }),
    'GetCapability(TPM_PROPERTIES)': () =>
      marshalCommand(GetCapability, { capability: TPM_CAP.TPM_PROPERTIES, property: 0x100, propertyCount: 8 }),
    'CreatePrimary(owner SRK': () =>
      marshalCommand(CreatePrimary, { primaryHandle: TPM_RH.OWNER, ...emptyCreate, inPublic: srkRsaTemplate() }),
    'Create(AK rsa2048': () => marshalCommand(Create, { parentHandle: 0x80000000, ...emptyCreate, inPublic: akRsaTemplate() }),
    'Create(AK2 ecc256': () => marshalCommand(Create, { parentHandle: 0x80000000, ...emptyCreate, inPublic: akEccTemplate() }),
    'Load(AK2)': () => {
      const out = decodeResponse(vectors.find((x) => x.name.startsWith('Create(AK2 ecc256'))!);
      return marshalCommand(Load, { parentHandle: 0x80000000, inPrivate: out.outPrivate, inPublic: out.outPublic });
    },
    'Load(AK)': () => {
      const create = vectors.find((x) => x.name.startsWith('Create(AK rsa2048'))!;
      const out = decodeResponse(create);
      return marshalCommand(Load, { parentHandle: 0x80000000, inPrivate: out.outPrivate, inPublic: out.outPublic });
    },
    'EvictControl(persist AK at 0x81010000)': () =>
      marshalCommand(EvictControl, { auth: TPM_RH.OWNER, objectHandle: 0x80000001, persistentHandle: 0x81010000 }),
    'ReadPublic(0x81010000)': () => marshalCommand(ReadPublic, { objectHandle: 0x81010000 }),
    'Hash(22 bytes for AK': () =>
      marshalCommand(Hash, { data: new TextEncoder().encode('hello, edge container\n'), hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.OWNER }),
    'Sign(AK2, ticket)': () => {
      const h = decodeResponse(vectors.find((x) => x.name.startsWith('Hash(22 bytes for AK2)'))!);
      return marshalCommand(Sign, {
        keyHandle: 0x80000001,
        digest: h.outHash,
        inScheme: { scheme: TPM_ALG.NULL, details: null },
        validation: h.validation,
      });
    },
    'Sign(AK, sequence ticket)': () => {
      const h = decodeResponse(vectors.find((x) => x.name === 'SequenceComplete')!);
      return marshalCommand(Sign, {
        keyHandle: 0x81010000,
        digest: h.result,
        inScheme: { scheme: TPM_ALG.NULL, details: null },
        validation: h.validation,
      });
    },
    SequenceComplete: (v) => {
      // The recorded message is the whole stream; its tail after the full 1024-byte updates goes here.
      const message = unhex(v.decoded.message);
      const tail = message.subarray(Math.floor((message.length - 1) / 1024) * 1024);
      return marshalCommand(SequenceComplete, { sequenceHandle: 0x80000001, buffer: tail, hierarchy: TPM_RH.OWNER });
    },
    'Sign(AK, ticket)': () => {
      const h = decodeResponse(vectors.find((x) => x.name.startsWith('Hash(22 bytes for AK)'))!);
      return marshalCommand(Sign, {
        keyHandle: 0x81010000,
        digest: h.outHash,
        inScheme: { scheme: TPM_ALG.NULL, details: null },
        validation: h.validation,
      });
    },
    'FlushContext(AK2)': () => marshalCommand(FlushContext, { flushHandle: 0x80000001 }),
    HashSequenceStart: () => marshalCommand(HashSequenceStart, { auth: new Uint8Array(0), hashAlg: TPM_ALG.SHA256 }),
    'SequenceUpdate(1024 bytes)': (v) => {
      const buf = unmarshalCommand(SequenceUpdate, unhex(v.command)).params.buffer as Uint8Array;
      return marshalCommand(SequenceUpdate, { sequenceHandle: 0x80000001, buffer: buf });
    },
    'ReadPublic(missing handle)': () => marshalCommand(ReadPublic, { objectHandle: 0x81017777 }),
    'Sign(restricted key, null ticket)': () =>
      marshalCommand(Sign, {
        keyHandle: 0x81010000,
        digest: new Uint8Array(32).fill(0x11),
        inScheme: { scheme: TPM_ALG.NULL, details: null },
        validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) },
      }),
    'EvictControl(remove 0x81010000)': () =>
      marshalCommand(EvictControl, { auth: TPM_RH.OWNER, objectHandle: 0x81010000, persistentHandle: 0x81010000 }),
    'CreatePrimary(endorsement, TCG EK template RSA2048)': () =>
      marshalCommand(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, ...emptyCreate, inPublic: ekRsaTemplate() }),
    'StartAuthSession(policy': (v) => {
      const nonceCaller = unmarshalCommand(StartAuthSession, unhex(v.command)).params.nonceCaller as Uint8Array;
      return marshalCommand(StartAuthSession, {
        tpmKey: TPM_RH.NULL,
        bind: TPM_RH.NULL,
        nonceCaller,
        encryptedSalt: new Uint8Array(0),
        sessionType: TPM_SE.POLICY,
        symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
        authHash: TPM_ALG.SHA256,
      });
    },
    'PolicySecret(TPM_RH_ENDORSEMENT)': () =>
      marshalCommand(PolicySecret, {
        authHandle: TPM_RH.ENDORSEMENT,
        policySession: 0x03000000,
        nonceTPM: new Uint8Array(0),
        cpHashA: new Uint8Array(0),
        policyRef: new Uint8Array(0),
        expiration: 0,
      }),
    PolicyGetDigest: () => marshalCommand(PolicyGetDigest, { policySession: 0x03000000 }),
    // ESAPI adds an HMAC to policy sessions (empty key: unbound, unsalted, empty authValue),
    // over cpHash with the EK's Name and the nonceTPM of the StartAuthSession just before.
    'Create(AK under EK, policy session)': (v) => {
      const [a] = sessionsIn(v);
      return marshalCommand(
        Create,
        { parentHandle: 0x80000000, ...emptyCreate, inPublic: akRsaTemplate() },
        { parentHandle: policyAuth(a!.sessionHandle, a!.nonceCaller, { hmacFor: { hashAlg: TPM_ALG.SHA256, nonceTPM: nonceTPMBefore(v) } }) },
        { parentHandle: ekName() },
      );
    },
    'Load(AK under EK, policy session)': (v) => {
      const [a] = sessionsIn(v);
      const create = vectors.find((x) => x.name.startsWith('Create(AK under EK'))!;
      const out = decodeResponse(create);
      return marshalCommand(
        Load,
        { parentHandle: 0x80000000, inPrivate: out.outPrivate, inPublic: out.outPublic },
        { parentHandle: policyAuth(a!.sessionHandle, a!.nonceCaller, { hmacFor: { hashAlg: TPM_ALG.SHA256, nonceTPM: nonceTPMBefore(v) } }) },
        { parentHandle: ekName() },
      );
    },
    'EvictControl(persist EK-child AK at 0x81010010)': () =>
      marshalCommand(EvictControl, { auth: TPM_RH.OWNER, objectHandle: 0x80000001, persistentHandle: 0x81010010 }, { auth: passwordAuth() }),
    'ReadPublic(0x81010010)': () => marshalCommand(ReadPublic, { objectHandle: 0x81010010 }),
  };

  for (const v of vectors) {
    const key = Object.keys(built).find((k) => v.name.startsWith(k));
    if (!key) continue;
    it(`${v.name}`, () => {
      expect(hex(built[key]!(v))).toBe(v.command);
    });
  }

  it('covers every recorded command', () => {
    const missing = vectors.filter((v) => !Object.keys(built).some((k) => v.name.startsWith(k))).map((v) => v.name);
    expect(missing).toEqual([]);
  });
});

describe('tpm2-tss vectors: responses decode to what tpm2-tss decoded', () => {
  for (const v of vectors) {
    it(v.name, () => {
      const want = v.decoded;
      if (want.rc) {
        let err: unknown;
        try {
          decodeResponse(v);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(TpmError);
        const te = err as TpmError;
        expect(hex32(te.rc)).toBe(want.rc);
        expect(te.message).toBe(want.text);
        return;
      }
      const out = decodeResponse(v);
      const params = unmarshalCommand(descriptorOf(v), unhex(v.command)).params as Record<string, any>;
      if ('randomBytes' in want) {
        expect(params.bytesRequested).toBe(want.bytesRequested);
        expect(hex(out.randomBytes)).toBe(want.randomBytes);
      }
      if ('properties' in want) {
        expect(out.moreData).toBe(want.moreData);
        expect(out.capabilityData.capability).toBe(want.capability);
        expect(out.capabilityData.data.map((p: any) => [p.property, p.value])).toEqual(want.properties);
      }
      if ('inPublic' in want) expect(hex(encode(TPM2B_PUBLIC, params.inPublic))).toBe(want.inPublic);
      if ('outPublic' in want) expectPublic(out.outPublic, want.outPublic);
      if ('outPrivate' in want) expect(hex(encode(TPM2B_PRIVATE, out.outPrivate))).toBe(want.outPrivate);
      if ('creationHash' in want) expect(hex(out.creationHash)).toBe(want.creationHash);
      if ('name' in want) {
        expect(hex(out.name)).toBe(want.name);
        // The Name is also computable from the public area alone.
        const pub: TPMT_PUBLIC = out.outPublic ?? params.inPublic;
        expect(hex(objectName(pub))).toBe(want.name);
      }
      if ('qualifiedName' in want) expect(hex(out.qualifiedName)).toBe(want.qualifiedName);
      if ('persistentHandle' in want) expect(hex32(params.persistentHandle)).toBe(want.persistentHandle);
      if ('outHash' in want) {
        expect(hex(params.data)).toBe(want.data);
        expect(params.hashAlg).toBe(want.hashAlg);
        expect(hex(out.outHash)).toBe(want.outHash);
        expect(hex(out.outHash)).toBe(createHash('sha256').update(params.data).digest('hex'));
      }
      if ('validation' in want) {
        expect(out.validation.tag).toBe(want.validation.tag);
        expect(hex32(out.validation.hierarchy)).toBe(want.validation.hierarchy);
        expect(hex(out.validation.digest)).toBe(want.validation.digest);
      }
      if ('result' in want) {
        expect(hex(out.result)).toBe(want.result);
        expect(createHash('sha256').update(unhex(want.message)).digest('hex')).toBe(want.result);
      }
      if ('signature' in want) {
        expect(hex(params.digest)).toBe(want.digest);
        expectSignature(out.signature, want.signature);
      }
      if ('hashAlg' in want && !('outHash' in want)) expect(params.hashAlg).toBe(want.hashAlg);
      if ('policyDigest' in want) {
        expect(hex(out.policyDigest)).toBe(want.policyDigest);
        expect(hex(out.policyDigest)).toBe(hex(EK_POLICY_A_SHA256));
      }
    });
  }
});
