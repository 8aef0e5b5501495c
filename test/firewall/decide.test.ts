/**
 * The firewall's decision core on real frames: handle rewriting both ways, the parameter-area
 * tricks of the research (§4), hierarchies, the authorization area, the DA throttle, NV quotas
 * and GetCapability filtering. Frames come from the library's marshaller; "the chip's"
 * responses from its response marshaller.
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH, TPM_ST, TPMA_SESSION } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalResponse, policyAuth } from '../../src/tpm/command.js';
import { AppState, contextDigest } from '../../src/firewall/app.js';
import { MakeCredential, NV_DefineSpace, NV_UndefineSpace, NV_Write, LoadExternal } from '../../src/firewall/commands.js';
import { decide } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import { forwarded, frame, loadObject, newConnection, NV_RANGE, pw, rcOf, roundTrip, startSequence, startSession, u32At } from './build.js';

const H = (base: number, n: number) => base + n * 0x100;
const P = (base: number, n: number) => base + 0x40 + n * 0x100;
const S = (base: number, n: number) => base + 0x800 + n * 0x100;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as never;
const NULL_TICKET = { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) };
const EVE_SRK_TEMPLATE = {
  type: TPM_ALG.RSA,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: 0x00030472,
  authPolicy: new Uint8Array(0),
  parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: NULL_SCHEME, keyBits: 2048, exponent: 0 },
  unique: new Uint8Array(256),
};
const creation = { inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: EVE_SRK_TEMPLATE as never, outsideInfo: new Uint8Array(0), creationPCR: [] };

describe('handle virtualization', () => {
  it('numbers loaded objects per connection and maps them back to the real handles', () => {
    const conn = newConnection();
    const key = loadObject(conn, 0x80000abc);
    expect(key).toBe(0x80000000);
    expect(conn.transients.get(key)).toBe(0x80000abc);
    const d = forwarded(decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET })));
    expect(u32At(d.command, 10)).toBe(0x80000abc);
    // Everything after the handle is the app's bytes, re-marshalled identically.
    const original = frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET });
    expect(Buffer.from(d.command.subarray(14))).toEqual(Buffer.from(original.subarray(14)));
    // Another connection of the same app does not see it: transients are per connection.
    const other = newConnection(conn.app);
    expect(rcOf(decide(other, frame(C.ReadPublic, { objectHandle: key })))).toBe(TPM_RC.REFERENCE_H0);
  });

  it('maps virtual persistent handles to where the service keeps the object', () => {
    const conn = newConnection();
    conn.app.persistents.set(0x81000010, 0x80000777);
    const d = forwarded(decide(conn, frame(C.ReadPublic, { objectHandle: 0x81000010 })));
    expect(u32At(d.command, 10)).toBe(0x80000777);
    expect(rcOf(decide(conn, frame(C.ReadPublic, { objectHandle: 0x81000011 })))).toBe(H(TPM_RC.HANDLE, 1));
  });

  it('never lets a handle of EVE or of another connection through, in any slot', () => {
    const conn = newConnection();
    conn.app.persistents.set(0x81000002, 0x81000002); // even if the registry held EVE's SRK by mistake
    for (const h of [0x81000001, 0x81000002, 0x81000003, 0x81000004, 0x81000005, 0x817fffff]) {
      expect(rcOf(decide(conn, frame(C.ReadPublic, { objectHandle: h })))).toBe(H(TPM_RC.HANDLE, 1));
      expect(rcOf(decide(conn, frame(C.Quote, { signHandle: h, qualifyingData: new Uint8Array(0), inScheme: NULL_SCHEME, PCRselect: [] })))).toBe(H(TPM_RC.HANDLE, 1));
    }
    expect(rcOf(decide(conn, frame(C.Load, { parentHandle: 0x80000001, inPrivate: new Uint8Array(4), inPublic: EVE_SRK_TEMPLATE as never })))).toBe(TPM_RC.REFERENCE_H0);
    expect(rcOf(decide(conn, frame(C.Sign, { keyHandle: TPM_RH.OWNER, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET })))).toBe(H(TPM_RC.HIERARCHY, 1));
    expect(rcOf(decide(conn, frame(C.ReadPublic, { objectHandle: 0x01001000 })))).toBe(H(TPM_RC.VALUE, 1));
  });

  it('records sessions the chip starts, and refuses sessions it did not start for this connection', () => {
    const conn = newConnection();
    startSession(conn, 0x03000001);
    expect(conn.sessions.has(0x03000001)).toBe(true);
    const key = loadObject(conn, 0x80000100);
    const use = policyAuth(0x03000001, new Uint8Array(16));
    forwarded(decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET }, { keyHandle: use })));
    const foreign = policyAuth(0x03000002, new Uint8Array(16));
    expect(rcOf(decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET }, { keyHandle: foreign })))).toBe(TPM_RC.REFERENCE_S0);
    expect(rcOf(decide(conn, frame(C.PolicyGetDigest, { policySession: 0x03000002 })))).toBe(TPM_RC.REFERENCE_H0);
  });

  it('forgets a session that ends with the command (no continueSession)', () => {
    const conn = newConnection();
    startSession(conn, 0x03000001);
    const key = loadObject(conn, 0x80000100);
    const once = policyAuth(0x03000001, new Uint8Array(16), { continueSession: false });
    const d = forwarded(decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET }, { keyHandle: once })));
    const sig = { sigAlg: TPM_ALG.HMAC, signature: { hash: TPM_ALG.SHA256, digest: new Uint8Array(32) } };
    finish(conn, d.plan, marshalResponse(C.Sign, { signature: sig } as never, [{ nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }]));
    expect(conn.sessions.has(0x03000001)).toBe(false);
  });
});

describe('handles in the parameter area', () => {
  it('FlushContext: only the connection’s own objects and sessions, rewritten to the real handle', () => {
    const conn = newConnection();
    const key = loadObject(conn, 0x80000abc);
    startSession(conn, 0x02000005);
    expect(rcOf(decide(conn, frame(C.FlushContext, { flushHandle: 0x80000001 })))).toBe(P(TPM_RC.HANDLE, 1));
    expect(rcOf(decide(conn, frame(C.FlushContext, { flushHandle: 0x80000abc })))).toBe(P(TPM_RC.HANDLE, 1)); // a real handle is no name for the app
    expect(rcOf(decide(conn, frame(C.FlushContext, { flushHandle: 0x02000006 })))).toBe(P(TPM_RC.HANDLE, 1)); // someone else's session
    expect(rcOf(decide(conn, frame(C.FlushContext, { flushHandle: 0x81000001 })))).toBe(P(TPM_RC.HANDLE, 1));
    const d = forwarded(decide(conn, frame(C.FlushContext, { flushHandle: key })));
    expect(u32At(d.command, 10)).toBe(0x80000abc);
    finish(conn, d.plan, marshalResponse(C.FlushContext, {} as never));
    expect(conn.transients.size).toBe(0);
    const s = forwarded(decide(conn, frame(C.FlushContext, { flushHandle: 0x02000005 })));
    finish(conn, s.plan, marshalResponse(C.FlushContext, {} as never));
    expect(conn.sessions.size).toBe(0);
  });

  it('a failed FlushContext changes no record', () => {
    const conn = newConnection();
    const key = loadObject(conn, 0x80000abc);
    const d = forwarded(decide(conn, frame(C.FlushContext, { flushHandle: key })));
    const err = new Uint8Array([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0xcb]);
    expect(Buffer.from(finish(conn, d.plan, err))).toEqual(Buffer.from(err));
    expect(conn.transients.get(key)).toBe(0x80000abc);
  });

  it('EvictControl goes to the service, inside the app’s range and quota, never onto EVE’s handles', () => {
    const conn = newConnection();
    const key = loadObject(conn, 0x80000abc);
    const evict = (persistentHandle: number, objectHandle = key, auth: number = TPM_RH.OWNER) => decide(conn, frame(C.EvictControl, { auth, objectHandle, persistentHandle }));
    expect(evict(0x81000100)).toEqual({ kind: 'service', op: { op: 'Persist', real: 0x80000abc, persistent: 0x81000100 } });
    for (const eve of [0x81000001, 0x81000002, 0x81000003, 0x81000004, 0x81000005, 0x817fffff, 0x81010001, 0x81800000]) {
      expect(rcOf(evict(eve))).toBe(P(TPM_RC.RANGE, 1));
    }
    expect(rcOf(evict(0x81000100, key, TPM_RH.PLATFORM))).toBe(H(TPM_RC.HIERARCHY, 1));
    expect(rcOf(evict(0x81000100, 0x80000005))).toBe(TPM_RC.REFERENCE_H1);
    conn.app.persistents.set(0x81000100, 0x80000f00);
    expect(rcOf(evict(0x81000100))).toBe(TPM_RC.NV_DEFINED);
    expect(evict(0x81000100, 0x81000100)).toEqual({ kind: 'service', op: { op: 'Evict', persistent: 0x81000100 } });
    // Another app's persistent handle is no handle of this app: it cannot be evicted.
    expect(rcOf(evict(0x81000200, 0x81000200))).toBe(H(TPM_RC.HANDLE, 2));
    for (let i = 0; i < 7; i++) conn.app.persistents.set(0x81000300 + i, 0x80000f00);
    expect(rcOf(evict(0x81000400))).toBe(TPM_RC.NV_SPACE);
  });

  it('NV_DefineSpace: only in the app’s range, no global attributes, always noDA, within the quota', () => {
    const conn = newConnection();
    const info = (nvIndex: number, attributes = 0x00060006, dataSize = 32) => ({ nvIndex, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: new Uint8Array(0), dataSize });
    const define = (publicInfo: ReturnType<typeof info>, authHandle: number = TPM_RH.OWNER, password = '') =>
      decide(conn, frame(NV_DefineSpace, { authHandle, auth: new Uint8Array(0), publicInfo }, { authHandle: pw(password) }));
    for (const eve of [0x01500000, 0x01600000, 0x01700000, 0x01800000, 0x01900000, 0x01c00002, 0x01001100]) {
      expect(rcOf(define(info(eve)))).toBe(P(TPM_RC.VALUE, 2));
    }
    expect(rcOf(define(info(0x01001000, 0x40060006)))).toBe(P(TPM_RC.ATTRIBUTES, 2));
    expect(rcOf(define(info(0x01001000, 0x00068006)))).toBe(P(TPM_RC.ATTRIBUTES, 2));
    expect(rcOf(define(info(0x01001000, 0x00060406)))).toBe(P(TPM_RC.ATTRIBUTES, 2));
    expect(rcOf(define(info(0x01001000), TPM_RH.PLATFORM))).toBe(H(TPM_RC.HIERARCHY, 1));
    expect(rcOf(define(info(0x01001000), TPM_RH.OWNER, 'guess'))).toBe(S(TPM_RC.BAD_AUTH, 1));
    expect(rcOf(define(info(0x01001000, 0x00060006, 8192)))).toBe(TPM_RC.NV_SPACE);
    const d = forwarded(define(info(0x01001000)));
    expect(d.ownerAuth).toEqual([0]);
    // The forwarded publicInfo has TPMA_NV_NO_DA (bit 25) set: 0x02060006.
    expect(Buffer.from(d.command).includes(Buffer.from([0x02, 0x06, 0x00, 0x06]))).toBe(true);
    finish(conn, d.plan, marshalResponse(NV_DefineSpace, {} as never, [{ nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }]));
    expect(conn.app.nv.get(0x01001000)).toBe(32);
    const w = forwarded(decide(conn, frame(NV_Write, { authHandle: 0x01001000, nvIndex: 0x01001000, data: new Uint8Array(4), offset: 0 })));
    expect(w.ownerAuth).toEqual([]);
    expect(rcOf(decide(conn, frame(NV_Write, { authHandle: 0x01800000, nvIndex: 0x01800000, data: new Uint8Array(4), offset: 0 })))).toBe(H(TPM_RC.HANDLE, 1));
    expect(rcOf(decide(conn, frame(C.NV_Read, { authHandle: TPM_RH.OWNER, nvIndex: 0x01900000, size: 4, offset: 0 })))).toBe(H(TPM_RC.HANDLE, 2));
    expect(forwarded(decide(conn, frame(C.NV_Read, { authHandle: TPM_RH.OWNER, nvIndex: 0x01001000, size: 4, offset: 0 }))).ownerAuth).toEqual([0]);
    expect(rcOf(decide(conn, frame(C.NV_ReadPublic, { nvIndex: 0x01c00002 })))).toBe(H(TPM_RC.HANDLE, 1));
    const u = forwarded(decide(conn, frame(NV_UndefineSpace, { authHandle: TPM_RH.OWNER, nvIndex: 0x01001000 })));
    finish(conn, u.plan, marshalResponse(NV_UndefineSpace, {} as never, [{ nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }]));
    expect(conn.app.nv.size).toBe(0);
  });

  it('Hash, SequenceComplete and LoadExternal: the chip makes only NULL tickets (owner/endorsement become NULL without sessions)', () => {
    const conn = newConnection();
    for (const h of [TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM]) {
      expect(rcOf(decide(conn, frame(LoadExternal, { inPrivate: new Uint8Array(0), inPublic: EVE_SRK_TEMPLATE as never, hierarchy: h })))).toBe(P(TPM_RC.HIERARCHY, 3));
    }
    expect(rcOf(decide(conn, frame(C.Hash, { data: new Uint8Array(3), hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.PLATFORM })))).toBe(P(TPM_RC.HIERARCHY, 3));
    // tpm2_hash / tpm2_sign ask for the owner's ticket: the chip gets NULL (the last 4 bytes).
    for (const h of [TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.NULL]) {
      const d = forwarded(decide(conn, frame(C.Hash, { data: new Uint8Array(3), hashAlg: TPM_ALG.SHA256, hierarchy: h })));
      expect(u32At(d.command, d.command.length - 4)).toBe(TPM_RH.NULL);
    }
    const seq = startSequence(conn, 0x80000321);
    expect(rcOf(decide(conn, frame(C.SequenceComplete, { sequenceHandle: seq, buffer: new Uint8Array(0), hierarchy: TPM_RH.PLATFORM })))).toBe(P(TPM_RC.HIERARCHY, 2));
    const owner = forwarded(decide(conn, frame(C.SequenceComplete, { sequenceHandle: seq, buffer: new Uint8Array(0), hierarchy: TPM_RH.OWNER })));
    expect(u32At(owner.command, owner.command.length - 4)).toBe(TPM_RH.NULL);
    const d = forwarded(decide(conn, frame(C.SequenceComplete, { sequenceHandle: seq, buffer: new Uint8Array(0), hierarchy: TPM_RH.NULL })));
    expect(u32At(d.command, 10)).toBe(0x80000321);
    finish(conn, d.plan, marshalResponse(C.SequenceComplete, { result: new Uint8Array(32), validation: NULL_TICKET } as never, [{ nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }]));
    expect(conn.transients.has(seq)).toBe(false);
  });

  it('Sign: a hashcheck ticket of any hierarchy but NULL is refused', () => {
    const conn = newConnection();
    const key = loadObject(conn, 0x80000100);
    const ticket = { ...NULL_TICKET, hierarchy: TPM_RH.OWNER, digest: new Uint8Array(32) };
    expect(rcOf(decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: ticket })))).toBe(P(TPM_RC.TICKET, 3));
  });

  it('ContextLoad: only contexts this app saved (from any of its connections)', () => {
    const app = new AppState('app-a', NV_RANGE);
    const conn = newConnection(app);
    const key = loadObject(conn, 0x80000100);
    const saved = { sequence: 7n, savedHandle: 0x80000000, hierarchy: TPM_RH.NULL, contextBlob: new Uint8Array([1, 2, 3]) };
    const s = forwarded(decide(conn, frame(C.ContextSave, { saveHandle: key })));
    finish(conn, s.plan, marshalResponse(C.ContextSave, { context: saved } as never));
    expect(app.saved.has(contextDigest(saved))).toBe(true);
    const later = newConnection(app);
    const back = roundTrip(later, C.ContextLoad, { context: saved }, { loadedHandle: 0x80000200 } as never);
    expect(later.transients.get(u32At(back, 10))).toBe(0x80000200);
    const theirs = { ...saved, contextBlob: new Uint8Array([9, 9, 9]) };
    expect(rcOf(decide(later, frame(C.ContextLoad, { context: theirs })))).toBe(P(TPM_RC.INTEGRITY, 1));
    expect(rcOf(decide(newConnection(new AppState('app-b', { first: 0x01002000, last: 0x010020ff })), frame(C.ContextLoad, { context: saved })))).toBe(P(TPM_RC.INTEGRITY, 1));
  });

  it('MakeCredential, ActivateCredential, Certify: every handle must be the app’s', () => {
    const conn = newConnection();
    const ak = loadObject(conn, 0x80000100);
    const ek = loadObject(conn, 0x80000101);
    forwarded(decide(conn, frame(MakeCredential, { handle: ek, credential: new Uint8Array(16), objectName: new Uint8Array(34) })));
    forwarded(decide(conn, frame(C.ActivateCredential, { activateHandle: ak, keyHandle: ek, credentialBlob: new Uint8Array(10), secret: new Uint8Array(10) })));
    expect(rcOf(decide(conn, frame(C.ActivateCredential, { activateHandle: ak, keyHandle: 0x81000001, credentialBlob: new Uint8Array(10), secret: new Uint8Array(10) })))).toBe(H(TPM_RC.HANDLE, 2));
    expect(rcOf(decide(conn, frame(C.ActivateCredential, { activateHandle: 0x81000003, keyHandle: ek, credentialBlob: new Uint8Array(10), secret: new Uint8Array(10) })))).toBe(H(TPM_RC.HANDLE, 1));
    expect(rcOf(decide(conn, frame(C.Certify, { objectHandle: ak, signHandle: 0x81000004, qualifyingData: new Uint8Array(0), inScheme: NULL_SCHEME })))).toBe(H(TPM_RC.HANDLE, 2));
  });
});

describe('quotas per connection', () => {
  it('objects and sessions: TPM_RC_OBJECT_MEMORY / TPM_RC_SESSION_MEMORY at the limit', () => {
    const conn = newConnection();
    for (let i = 0; i < conn.app.limits.transients; i++) loadObject(conn, 0x80000100 + i);
    expect(rcOf(decide(conn, frame(C.HashSequenceStart, { auth: new Uint8Array(0), hashAlg: TPM_ALG.SHA256 })))).toBe(TPM_RC.OBJECT_MEMORY);
    for (let i = 0; i < conn.app.limits.sessions; i++) startSession(conn, 0x03000000 + i);
    const start = frame(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: new Uint8Array(0), sessionType: 1, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null }, authHash: TPM_ALG.SHA256 } as never);
    expect(rcOf(decide(conn, start))).toBe(TPM_RC.SESSION_MEMORY);
    // Commands that load nothing go on.
    forwarded(decide(conn, frame(C.GetRandom, { bytesRequested: 8 })));
  });
});

describe('hierarchies and authorization', () => {
  it('CreatePrimary: owner/endorsement go to the service (never EVE’s SRK on the chip), NULL to the chip, platform never', () => {
    const conn = newConnection();
    const cp = (primaryHandle: number, password = '') => decide(conn, frame(C.CreatePrimary, { primaryHandle, ...creation }, { primaryHandle: pw(password) }));
    const owner = cp(TPM_RH.OWNER);
    expect(owner.kind).toBe('service');
    expect(owner.kind === 'service' && owner.op.op === 'CreatePrimary' && owner.op.hierarchy).toBe(TPM_RH.OWNER);
    expect(cp(TPM_RH.ENDORSEMENT).kind).toBe('service');
    expect(rcOf(cp(TPM_RH.PLATFORM))).toBe(H(TPM_RC.HIERARCHY, 1));
    expect(rcOf(cp(TPM_RH.LOCKOUT))).toBe(H(TPM_RC.HIERARCHY, 1));
    expect(rcOf(cp(TPM_RH.OWNER, 'guess'))).toBe(S(TPM_RC.BAD_AUTH, 1));
    const onChip = forwarded(cp(TPM_RH.NULL));
    expect(u32At(onChip.command, 10)).toBe(TPM_RH.NULL);
  });

  it('an HMAC or policy session never authorizes a virtual hierarchy', () => {
    const conn = newConnection();
    startSession(conn, 0x02000001);
    const s = { sessionHandle: 0x02000001, nonceCaller: new Uint8Array(16), sessionAttributes: TPMA_SESSION.continueSession, hmac: new Uint8Array(32) };
    expect(rcOf(decide(conn, frame(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, ...creation }, { primaryHandle: s })))).toBe(TPM_RC.AUTH_TYPE);
    // A password with decrypt set would hide inSensitive from the service: refused.
    const decrypting = { ...pw(), sessionAttributes: TPMA_SESSION.decrypt };
    expect(rcOf(decide(conn, frame(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, ...creation }, { primaryHandle: decrypting })))).toBe(S(TPM_RC.ATTRIBUTES, 1));
    // Extra (audit/encrypt) sessions: the service has none of the app's to answer with.
    const one = frame(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, ...creation }, { primaryHandle: pw() });
    const entry = one.subarray(18, 27);
    const two = Uint8Array.from([...one.subarray(0, 14), 0, 0, 0, 18, ...entry, 0x02, 0, 0, 1, 0, 0, 1, 0, 0, ...one.subarray(27)]);
    new DataView(two.buffer).setUint32(2, two.length);
    expect(rcOf(decide(conn, two))).toBe(TPM_RC.AUTH_CONTEXT);
  });

  it('PolicySecret names the app’s objects or NV, or its virtual endorsement hierarchy — never owner, platform or lockout', () => {
    const conn = newConnection();
    startSession(conn, 0x03000001);
    const key = loadObject(conn, 0x80000100);
    const ps = (authHandle: number, password = '', expiration = 0) =>
      decide(conn, frame(C.PolicySecret, { authHandle, policySession: 0x03000001, nonceTPM: new Uint8Array(0), cpHashA: new Uint8Array(0), policyRef: new Uint8Array(0), expiration }, { authHandle: pw(password) }));
    for (const h of [TPM_RH.OWNER, TPM_RH.PLATFORM, TPM_RH.LOCKOUT]) expect(rcOf(ps(h, 'secret'))).toBe(H(TPM_RC.HIERARCHY, 1));
    // The app's virtual EK policy (docs/FIREWALL.md "The EK"): the empty password, the service authorizes the real one; no ticket.
    expect(rcOf(ps(TPM_RH.ENDORSEMENT, 'secret'))).toBe(S(TPM_RC.BAD_AUTH, 1));
    expect(rcOf(ps(TPM_RH.ENDORSEMENT, '', -1))).toBe(P(TPM_RC.VALUE, 4));
    const e = forwarded(ps(TPM_RH.ENDORSEMENT));
    expect(u32At(e.command, 10)).toBe(TPM_RH.ENDORSEMENT);
    expect(e.ownerAuth).toEqual([0]);
    expect(rcOf(ps(0x81000001))).toBe(H(TPM_RC.HANDLE, 1));
    expect(rcOf(ps(0x01600000))).toBe(H(TPM_RC.HANDLE, 1));
    const d = forwarded(ps(key));
    expect(u32At(d.command, 10)).toBe(0x80000100);
    expect(u32At(d.command, 14)).toBe(0x03000001);
  });

  it('StartAuthSession: tpmKey and bind are the app’s or NULL', () => {
    const conn = newConnection();
    const start = (tpmKey: number, bind: number) =>
      decide(conn, frame(C.StartAuthSession, { tpmKey, bind, nonceCaller: new Uint8Array(16), encryptedSalt: new Uint8Array(0), sessionType: 0, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null }, authHash: TPM_ALG.SHA256 } as never));
    expect(rcOf(start(0x81000002, TPM_RH.NULL))).toBe(H(TPM_RC.HANDLE, 1));
    expect(rcOf(start(TPM_RH.NULL, TPM_RH.OWNER))).toBe(H(TPM_RC.HIERARCHY, 2));
    expect(rcOf(start(TPM_RH.NULL, 0x01600000))).toBe(H(TPM_RC.HANDLE, 2));
    forwarded(start(TPM_RH.NULL, TPM_RH.NULL));
  });

  it('counts the app’s authorization failures and stops it before the chip’s lockout', () => {
    const conn = newConnection();
    const key = loadObject(conn, 0x80000100);
    const sign = () => decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET }, { keyHandle: pw('wrong') }));
    for (let i = 0; i < conn.app.limits.daFailures; i++) {
      const d = forwarded(sign());
      finish(conn, d.plan, new Uint8Array([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x8e])); // TPM_RC_AUTH_FAIL + S1
    }
    expect(conn.app.daFailures).toBe(conn.app.limits.daFailures);
    expect(rcOf(sign())).toBe(TPM_RC.LOCKOUT);
    // Commands without object authorization go on.
    forwarded(decide(conn, frame(C.GetRandom, { bytesRequested: 8 })));
  });
});

describe('GetCapability', () => {
  const getcap = (property: number, propertyCount = 32, capability: number = TPM_CAP.HANDLES) => frame(C.GetCapability, { capability: capability as never, property, propertyCount });
  const handlesIn = (response: Uint8Array): number[] => {
    const n = u32At(response, 15);
    return Array.from({ length: n }, (_, i) => u32At(response, 19 + 4 * i));
  };

  it('answers transient, persistent and session lists from the app’s own records', () => {
    const conn = newConnection();
    loadObject(conn, 0x80000100);
    loadObject(conn, 0x80000101);
    conn.app.persistents.set(0x81000100, 0x80000f00);
    startSession(conn, 0x03000004);
    const reply = (p: number, count?: number) => {
      const d = decide(conn, getcap(p, count));
      if (d.kind !== 'reply' || d.rc !== 0) throw new Error('expected a local answer');
      return d.response;
    };
    expect(handlesIn(reply(0x80000000))).toEqual([0x80000000, 0x80000001]);
    expect(handlesIn(reply(0x81000000))).toEqual([0x81000100]);
    expect(handlesIn(reply(0x03000000))).toEqual([0x03000004]);
    expect(handlesIn(reply(0x02000000))).toEqual([]);
    const one = reply(0x80000000, 1);
    expect(one[10]).toBe(1); // moreData
    expect(handlesIn(one)).toEqual([0x80000000]);
  });

  it('cuts the chip’s NV index list to the app’s range; other capabilities pass', () => {
    const conn = newConnection();
    const d = forwarded(decide(conn, getcap(0x01000000)));
    const chip = marshalResponse(C.GetCapability, { moreData: false, capabilityData: { capability: TPM_CAP.HANDLES, data: [0x01001000, 0x01500000, 0x01800000, 0x01c00002, 0x01002000] } } as never);
    expect(handlesIn(finish(conn, d.plan, chip))).toEqual([0x01001000]);
    forwarded(decide(conn, getcap(0x100, 8, TPM_CAP.TPM_PROPERTIES)));
    // With a session its response could not be rewritten under an rpHash: refused.
    const withSession = Buffer.from('8002' + '00000023' + '0000017a' + '00000009' + '40000009' + '0000' + '00' + '0000' + '00000001' + '01000000' + '00000008', 'hex');
    expect(rcOf(decide(conn, new Uint8Array(withSession)))).toBe(TPM_RC.AUTH_CONTEXT);
  });
});
