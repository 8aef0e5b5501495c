/**
 * The policy, NV and object commands beyond the first slice (policy-rules.ts, nv-rules.ts,
 * object-rules.ts): each is forwarded with the app's own handles mapped to the real ones, each
 * handle slot refuses what is not the app's (another connection's object or session, EVE's
 * persistent handles, another app's NV, hierarchies), and the parameter checks hold.
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import { passwordAuth, policyAuth, type Authorization } from '../../src/tpm/command.js';
import { decide } from '../../src/firewall/decide.js';
import { RULES } from '../../src/firewall/rules.js';
import * as P from '../../src/firewall/commands-policy.js';
import * as N from '../../src/firewall/commands-nv.js';
import * as O from '../../src/firewall/commands-objects.js';
import type { Connection } from '../../src/firewall/app.js';
import { forwarded, frame, loadObject, newConnection, NV_RANGE, rcOf, roundTrip, startSession, u32At } from './build.js';

const H = (base: number, n: number) => base + n * 0x100;
const Pm = (base: number, n: number) => base + 0x40 + n * 0x100;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as never;
const SYM_NULL = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never;
const empty = new Uint8Array(0);
const NV = NV_RANGE.first;
const SESSION = 0x03000010;
const PUB = {
  type: TPM_ALG.KEYEDHASH,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: 0x40,
  authPolicy: empty,
  parameters: { scheme: { scheme: TPM_ALG.NULL, details: null } },
  unique: new Uint8Array(32),
} as never;

/** Each new command: a frame with handles `h` (the app's own, in slot order) and the authorizations its auth handles take. */
type Case = { cmd: { code: number; name: string }; build: (h: number[]) => Uint8Array };
const pw = passwordAuth();
const cases = (): Case[] => [
  { cmd: P.PolicyPCR, build: ([s]) => frame(P.PolicyPCR, { policySession: s!, pcrDigest: empty, pcrs: [{ hash: TPM_ALG.SHA256, pcrSelect: Uint8Array.of(3, 0, 0) }] } as never) },
  { cmd: P.PolicyCommandCode, build: ([s]) => frame(P.PolicyCommandCode, { policySession: s!, code: 0x15e }) },
  { cmd: P.PolicyAuthValue, build: ([s]) => frame(P.PolicyAuthValue, { policySession: s! }) },
  { cmd: P.PolicyPassword, build: ([s]) => frame(P.PolicyPassword, { policySession: s! }) },
  { cmd: P.PolicyOR, build: ([s]) => frame(P.PolicyOR, { policySession: s!, pHashList: [new Uint8Array(32), new Uint8Array(32).fill(1)] }) },
  { cmd: P.PolicyRestart, build: ([s]) => frame(P.PolicyRestart, { sessionHandle: s! }) },
  { cmd: P.PolicyCpHash, build: ([s]) => frame(P.PolicyCpHash, { policySession: s!, cpHashA: new Uint8Array(32) }) },
  { cmd: P.PolicyNameHash, build: ([s]) => frame(P.PolicyNameHash, { policySession: s!, nameHash: new Uint8Array(32) }) },
  { cmd: P.PolicyDuplicationSelect, build: ([s]) => frame(P.PolicyDuplicationSelect, { policySession: s!, objectName: new Uint8Array(34), newParentName: new Uint8Array(34), includeObject: false } as never) },
  { cmd: P.PolicyNV, build: ([a, n, s]) => frame(P.PolicyNV, { authHandle: a!, nvIndex: n!, policySession: s!, operandB: Uint8Array.of(1), offset: 0, operation: 0 }, { authHandle: pw }) },
  { cmd: P.PolicySigned, build: ([k, s]) => frame(P.PolicySigned, { authObject: k!, policySession: s!, nonceTPM: empty, cpHashA: empty, policyRef: empty, expiration: 0, auth: { sigAlg: TPM_ALG.NULL, signature: null } } as never) },
  { cmd: P.PolicyAuthorize, build: ([s]) => frame(P.PolicyAuthorize, { policySession: s!, approvedPolicy: new Uint8Array(32), policyRef: empty, keySign: new Uint8Array(34), checkTicket: { tag: TPM_ST.VERIFIED, hierarchy: TPM_RH.OWNER, digest: new Uint8Array(32) } } as never) },
  { cmd: N.NV_Increment, build: ([a, n]) => frame(N.NV_Increment, { authHandle: a!, nvIndex: n! }, { authHandle: pw }) },
  { cmd: N.NV_Extend, build: ([a, n]) => frame(N.NV_Extend, { authHandle: a!, nvIndex: n!, data: Uint8Array.of(1, 2) }, { authHandle: pw }) },
  { cmd: N.NV_SetBits, build: ([a, n]) => frame(N.NV_SetBits, { authHandle: a!, nvIndex: n!, bits: 5n }, { authHandle: pw }) },
  { cmd: N.NV_WriteLock, build: ([a, n]) => frame(N.NV_WriteLock, { authHandle: a!, nvIndex: n! }, { authHandle: pw }) },
  { cmd: N.NV_ReadLock, build: ([a, n]) => frame(N.NV_ReadLock, { authHandle: a!, nvIndex: n! }, { authHandle: pw }) },
  { cmd: N.NV_ChangeAuth, build: ([n]) => frame(N.NV_ChangeAuth, { nvIndex: n!, newAuth: Uint8Array.of(1) }, { nvIndex: policyAuth(SESSION, new Uint8Array(16)) }) },
  { cmd: N.NV_Certify, build: ([k, a, n]) => frame(N.NV_Certify, { signHandle: k!, authHandle: a!, nvIndex: n!, qualifyingData: empty, inScheme: NULL_SCHEME, size: 8, offset: 0 }, { signHandle: pw, authHandle: pw }) },
  { cmd: O.HMAC, build: ([k]) => frame(O.HMAC, { handle: k!, buffer: Uint8Array.of(1), hashAlg: TPM_ALG.SHA256 } as never, { handle: pw }) },
  { cmd: O.HMAC_Start, build: ([k]) => frame(O.HMAC_Start, { handle: k!, auth: empty, hashAlg: TPM_ALG.NULL } as never, { handle: pw }) },
  { cmd: O.EncryptDecrypt, build: ([k]) => frame(O.EncryptDecrypt, { keyHandle: k!, decrypt: false, mode: TPM_ALG.CFB, ivIn: new Uint8Array(16), inData: Uint8Array.of(1) } as never, { keyHandle: pw }) },
  { cmd: O.ObjectChangeAuth, build: ([k, p]) => frame(O.ObjectChangeAuth, { objectHandle: k!, parentHandle: p!, newAuth: Uint8Array.of(1) }, { objectHandle: pw }) },
  { cmd: O.Duplicate, build: ([k, p]) => frame(O.Duplicate, { objectHandle: k!, newParentHandle: p!, encryptionKeyIn: empty, symmetricAlg: SYM_NULL }, { objectHandle: policyAuth(SESSION, new Uint8Array(16)) }) },
  { cmd: O.Import, build: ([p]) => frame(O.Import, { parentHandle: p!, encryptionKey: empty, objectPublic: PUB, duplicate: Uint8Array.of(0, 1), inSymSeed: empty, symmetricAlg: SYM_NULL }, { parentHandle: pw }) },
  { cmd: O.CreateLoaded, build: ([p]) => frame(O.CreateLoaded, { parentHandle: p!, inSensitive: { userAuth: empty, data: empty }, inPublic: Uint8Array.of(0, 8) } as never, { parentHandle: pw }) },
  { cmd: O.CertifyCreation, build: ([k, o]) => frame(O.CertifyCreation, { signHandle: k!, objectHandle: o!, qualifyingData: empty, creationHash: new Uint8Array(32), inScheme: NULL_SCHEME, creationTicket: { tag: TPM_ST.CREATION, hierarchy: TPM_RH.OWNER, digest: new Uint8Array(32) } } as never, { signHandle: pw }) },
];

/** A connection holding two objects (0x80000a01/2 on the chip), a session, and the app's NV index. */
function setUp(): { conn: Connection; objects: [number, number] } {
  const conn = newConnection();
  const objects: [number, number] = [loadObject(conn, 0x80000a01), loadObject(conn, 0x80000a02)];
  startSession(conn, SESSION);
  return { conn, objects };
}

/** The app's own handle for each slot kind, and what the chip gets for it. */
function own(slot: string, objects: [number, number], i: number): [number, number] {
  if (slot === 'session') return [SESSION, SESSION];
  if (slot === 'nv' || slot === 'nvAuth') return [NV, NV];
  return [objects[i % 2]!, 0x80000a01 + (i % 2)];
}

describe('policy, NV and object commands on the app’s own handles', () => {
  it('each is a rule, forwarded with the real handles', () => {
    for (const c of cases()) {
      const rule = RULES.get(c.cmd.code)!;
      expect(rule.cmd.name, c.cmd.name).toBe(c.cmd.name);
      const { conn, objects } = setUp();
      const pairs = rule.slots.map((s, i) => own(s, objects, i));
      const d = forwarded(decide(conn, c.build(pairs.map((p) => p[0]))));
      pairs.forEach(([, real], i) => expect(u32At(d.command, 10 + 4 * i), `${c.cmd.name} handle ${i + 1}`).toBe(real));
    }
  });

  it('each handle slot refuses another connection’s object or session, EVE’s handles, another app’s NV and hierarchies', () => {
    for (const c of cases()) {
      const rule = RULES.get(c.cmd.code)!;
      rule.slots.forEach((slot, i) => {
        const { conn, objects } = setUp();
        const handles = rule.slots.map((s, j) => own(s, objects, j)[0]);
        const foreign: Array<[number, number]> =
          slot === 'session'
            ? [[0x03000099, TPM_RC.REFERENCE_H0 + i], [0x02000010, TPM_RC.REFERENCE_H0 + i]]
            : slot === 'nv' || slot === 'nvAuth'
              ? [[NV_RANGE.last + 1, H(TPM_RC.HANDLE, i + 1)], [0x01800000, H(TPM_RC.HANDLE, i + 1)], [TPM_RH.PLATFORM, H(TPM_RC.HIERARCHY, i + 1)]]
              : [[0x80000005, TPM_RC.REFERENCE_H0 + i], [0x81000001, H(TPM_RC.HANDLE, i + 1)], [0x81000003, H(TPM_RC.HANDLE, i + 1)], [TPM_RH.OWNER, H(TPM_RC.HIERARCHY, i + 1)], [TPM_RH.ENDORSEMENT, H(TPM_RC.HIERARCHY, i + 1)]];
        for (const [h, rc] of foreign) {
          const bad = [...handles];
          bad[i] = h;
          expect(rcOf(decide(conn, c.build(bad))), `${c.cmd.name} slot ${i + 1} = 0x${h.toString(16)}`).toBe(rc);
        }
      });
    }
  });

  it('another app’s connection cannot name this app’s objects or sessions', () => {
    const { objects } = setUp();
    const other = newConnection();
    expect(rcOf(decide(other, frame(O.HMAC, { handle: objects[0], buffer: Uint8Array.of(1), hashAlg: TPM_ALG.SHA256 } as never, { handle: pw })))).toBe(TPM_RC.REFERENCE_H0);
    expect(rcOf(decide(other, frame(P.PolicyPCR, { policySession: SESSION, pcrDigest: empty, pcrs: [] })))).toBe(TPM_RC.REFERENCE_H0);
  });
});

describe('parameter checks', () => {
  it('PolicySigned mints no ticket: expiration < 0 → VALUE+P4', () => {
    const { conn, objects } = setUp();
    const signed = (expiration: number) =>
      frame(P.PolicySigned, { authObject: objects[0], policySession: SESSION, nonceTPM: empty, cpHashA: empty, policyRef: empty, expiration, auth: { sigAlg: TPM_ALG.NULL, signature: null } } as never);
    expect(rcOf(decide(conn, signed(-1)))).toBe(Pm(TPM_RC.VALUE, 4));
    forwarded(decide(conn, signed(60)));
  });

  it('PolicyAuthorize: checkTicket of the owner, endorsement or NULL hierarchy only (TICKET+P4)', () => {
    const { conn } = setUp();
    const authorize = (hierarchy: number) =>
      frame(P.PolicyAuthorize, { policySession: SESSION, approvedPolicy: new Uint8Array(32), policyRef: empty, keySign: new Uint8Array(34), checkTicket: { tag: TPM_ST.VERIFIED, hierarchy, digest: new Uint8Array(32) } } as never);
    for (const h of [TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.NULL]) forwarded(decide(conn, authorize(h)));
    for (const h of [TPM_RH.PLATFORM, TPM_RH.LOCKOUT, 0x81000001]) expect(rcOf(decide(conn, authorize(h)))).toBe(Pm(TPM_RC.TICKET, 4));
  });

  it('PolicyTicket stays refused (no ticket can be proved the app’s)', () => {
    const f = Uint8Array.from([0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x72, 0x03, 0, 0, 0x10]);
    expect(rcOf(decide(newConnection(), f))).toBe(TPM_RC.COMMAND_CODE);
  });

  it('CreateLoaded under a hierarchy (a primary) → HIERARCHY+H1; under the app’s object it loads a transient', () => {
    const { conn, objects } = setUp();
    const create = (parent: number) => frame(O.CreateLoaded, { parentHandle: parent, inSensitive: { userAuth: empty, data: empty }, inPublic: Uint8Array.of(0, 8) } as never, { parentHandle: pw });
    for (const h of [TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM, TPM_RH.NULL]) expect(rcOf(decide(conn, create(h)))).toBe(H(TPM_RC.HIERARCHY, 1));
    const out = roundTrip(conn, O.CreateLoaded, { parentHandle: objects[0], inSensitive: { userAuth: empty, data: empty }, inPublic: Uint8Array.of(0, 8) } as never, { objectHandle: 0x80000a03, outPrivate: empty, outPublic: PUB, name: new Uint8Array(34) } as never, { parentHandle: pw });
    expect(conn.transients.get(u32At(out, 10))).toBe(0x80000a03);
  });

  it('HMAC_Start’s sequence is the connection’s transient, within its quota', () => {
    const { conn, objects } = setUp();
    const start = { handle: objects[0], auth: empty, hashAlg: TPM_ALG.SHA256 } as never;
    const out = roundTrip(conn, O.HMAC_Start, start, { sequenceHandle: 0x80000a04 } as never, { handle: pw });
    expect(conn.transients.get(u32At(out, 10))).toBe(0x80000a04);
    while (conn.transients.size < conn.app.limits.transients) conn.addTransient(0x80000b00 + conn.transients.size);
    expect(rcOf(decide(conn, frame(O.HMAC_Start, start, { handle: pw })))).toBe(TPM_RC.OBJECT_MEMORY);
  });

  it('Duplicate to TPM_RH_NULL (unwrapped) is the app’s own key; to a hierarchy refused', () => {
    const { conn, objects } = setUp();
    const dup = (p: number) => frame(O.Duplicate, { objectHandle: objects[0], newParentHandle: p, encryptionKeyIn: empty, symmetricAlg: SYM_NULL }, { objectHandle: policyAuth(SESSION, new Uint8Array(16)) as Authorization });
    expect(u32At(forwarded(decide(conn, dup(TPM_RH.NULL))).command, 14)).toBe(TPM_RH.NULL);
    expect(rcOf(decide(conn, dup(TPM_RH.OWNER)))).toBe(H(TPM_RC.HIERARCHY, 2));
  });

  it('the NV rows that change an index count as NV writes; reads and certifications do not', () => {
    const writes = [N.NV_Increment, N.NV_Extend, N.NV_SetBits, N.NV_WriteLock, N.NV_ReadLock, N.NV_ChangeAuth].map((c) => RULES.get(c.code)!.nvWrite);
    expect(writes).toEqual([true, true, true, true, true, true]);
    expect(RULES.get(N.NV_Certify.code)!.nvWrite).toBeUndefined();
    expect(RULES.get(P.PolicyNV.code)!.nvWrite).toBeUndefined();
  });
});
