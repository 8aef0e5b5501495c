/**
 * The raw channel on a real service over real sockets, against swtpm: the upgrade (101, and
 * 401 without identity), frames (oversized, truncated, disconnect mid-frame: nothing left
 * loaded on the chip), and isolation between connections and apps.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, passwordAuth, unmarshalResponse } from '../../src/tpm/command.js';
import { akEccTemplate } from '../../src/tpm/keys/templates.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { NV_DefineSpace as NvDefine } from '../../src/firewall/commands.js';
import { RULES } from '../../src/firewall/rules.js';
import { openRaw, rawSettled, rcOf, type RawConn, u32At, eveSnapshot } from './helpers.js';

const signing = { ...akEccTemplate(), objectAttributes: akEccTemplate().objectAttributes - 0x10000 }; // not restricted
const primary = (hierarchy: number) =>
  marshalCommand(
    C.CreatePrimary,
    { primaryHandle: hierarchy, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: signing as never, outsideInfo: new Uint8Array(0), creationPCR: [] },
    { primaryHandle: passwordAuth() },
  );
const getRandom = marshalCommand(C.GetRandom, { bytesRequested: 8 });
const transients = (env: TestEnv) =>
  env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x80000000, propertyCount: 64 })).capabilityData);

describe.skipIf(skipUnlessCI(!swtpmAvailable(), 'swtpm'))('raw channel', () => {
  let env: TestEnv;
  const open: RawConn[] = [];
  const raw = async (tenant: string | undefined, via: 'unix' | 'tcp' = 'unix'): Promise<RawConn> => {
    const c = await openRaw(via === 'unix' ? env.unix : env.tcp, tenant === undefined ? undefined : env.secrets[tenant]);
    open.push(c);
    return c;
  };
  const settled = (): Promise<void> => rawSettled(env);

  beforeAll(async () => {
    env = await startEnv();
  }, 120_000);
  afterAll(async () => {
    for (const c of open) c.close();
    await env?.stop();
  });

  it('upgrades with 101 and answers TPM frames; without identity a 401 JSON answer and no upgrade', async () => {
    const c = await raw('alice');
    expect(c.status).toBe(101);
    expect(c.head).toMatch(/^upgrade: tpm2-frames$/im);
    const r = await c.send(getRandom);
    expect(rcOf(r)).toBe(0);
    expect(unmarshalResponse(C.GetRandom, r).output.randomBytes.length).toBe(8);

    const anon = await raw(undefined);
    expect(anon.status).toBe(401);
    expect(JSON.parse(anon.body).error.code).toBe('UNAUTHENTICATED');
    const wrong = await openRaw(env.unix, 'not-a-secret');
    open.push(wrong);
    expect(wrong.status).toBe(401);
    const other = await openRaw(env.unix, env.secrets.alice, { Connection: 'Upgrade', Upgrade: 'websocket' });
    open.push(other);
    expect(other.status).toBe(400);
    expect(JSON.parse(other.body).error.code).toBe('BAD_REQUEST');
    // /v1 goes on as before on the same listener.
    expect((await env.client('alice').request('health', {})).status).toBe('ok');
    c.close();
  });

  it('frames: a bad size gets TPM_RC_COMMAND_SIZE and the connection closes; bad tags and codes are answered', async () => {
    const c = await raw('alice', 'tcp');
    const tpm12 = Uint8Array.from([0x00, 0xc1, 0, 0, 0, 10, 0, 0, 0, 0x46]);
    expect(rcOf(await c.send(tpm12))).toBe(TPM_RC.BAD_TAG);
    const clear = Uint8Array.from([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x26]); // TPM2_Clear
    expect(rcOf(await c.send(clear))).toBe(TPM_RC.COMMAND_CODE);
    const huge = new Uint8Array(10);
    new DataView(huge.buffer).setUint16(0, TPM_ST.NO_SESSIONS);
    new DataView(huge.buffer).setUint32(2, 5000);
    expect(rcOf(await c.send(huge))).toBe(TPM_RC.COMMAND_SIZE);
    await c.closed();

    const tiny = await raw('alice');
    tiny.write(Uint8Array.from([0x80, 0x01, 0, 0, 0, 6]));
    const rest = await tiny.closed();
    expect(rcOf(rest)).toBe(TPM_RC.COMMAND_SIZE);
    await settled();
  });

  it('disconnect mid-frame or with objects and sessions: nothing of the connection stays on the chip', async () => {
    const c = await raw('alice');
    const made = await c.send(primary(TPM_RH.NULL));
    expect(rcOf(made)).toBe(0);
    expect(u32At(made, 10)).toBe(0x80000000);
    const session = await c.send(
      marshalCommand(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: new Uint8Array(0), sessionType: 0 as never, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never, authHash: TPM_ALG.SHA256 }),
    );
    expect(rcOf(session)).toBe(0);
    // Between commands the object stays loaded (nobody needs its slot); the session is saved out.
    expect(await transients(env)).toEqual({ capability: TPM_CAP.HANDLES, data: [0x80000000] });
    const saved = await env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x03000000, propertyCount: 64 })).capabilityData);
    expect(saved).toEqual({ capability: TPM_CAP.HANDLES, data: [u32At(session, 10)] });
    // Half a frame, then gone.
    c.write(getRandom.subarray(0, 7));
    c.close();
    await settled();
    expect(await transients(env)).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
    // Loaded (0x02) and saved (0x03) sessions: the connection's session was saved out between commands.
    for (const property of [0x02000000, 0x03000000]) {
      const sessions = await env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property, propertyCount: 64 })).capabilityData);
      expect(sessions).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
    }
  });

  it('isolation: another connection’s transient and session, another app’s saved context and session — refused', async () => {
    const a1 = await raw('alice');
    const a2 = await raw('alice', 'tcp');
    const b = await raw('bob');
    expect(u32At(await a1.send(primary(TPM_RH.NULL)), 10)).toBe(0x80000000);
    const saved = await a1.send(marshalCommand(C.ContextSave, { saveHandle: 0x80000000 }));
    expect(rcOf(saved)).toBe(0);
    const { context } = unmarshalResponse(C.ContextSave, saved).output;
    const readPublic = marshalCommand(C.ReadPublic, { objectHandle: 0x80000000 });
    // Another connection of the same app: its handle names nothing there (TPM_RC_REFERENCE_H0).
    expect(rcOf(await a2.send(readPublic))).toBe(TPM_RC.REFERENCE_H0);
    // The app's own saved context loads on its other connection; never for another app.
    expect(rcOf(await b.send(marshalCommand(C.ContextLoad, { context })))).toBe(TPM_RC.INTEGRITY + 0x40 + 0x100);
    const loaded = await a2.send(marshalCommand(C.ContextLoad, { context }));
    expect(rcOf(loaded)).toBe(0);
    expect(u32At(loaded, 10)).toBe(0x80000000);
    expect(rcOf(await a2.send(readPublic))).toBe(0);

    const started = await a1.send(
      marshalCommand(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: new Uint8Array(0), sessionType: 1 as never, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never, authHash: TPM_ALG.SHA256 }),
    );
    expect(rcOf(started)).toBe(0);
    const session = u32At(started, 10);
    const digestOf = marshalCommand(C.PolicyGetDigest, { policySession: session });
    expect(rcOf(await a1.send(digestOf))).toBe(0);
    // Nobody else may use or flush it, whatever its handle.
    expect(rcOf(await b.send(digestOf))).toBe(TPM_RC.REFERENCE_H0);
    expect(rcOf(await a2.send(digestOf))).toBe(TPM_RC.REFERENCE_H0);
    expect(rcOf(await b.send(marshalCommand(C.FlushContext, { flushHandle: session })))).toBe(TPM_RC.HANDLE + 0x40 + 0x100);
    expect(rcOf(await a1.send(digestOf))).toBe(0);
    // Bob's handle list shows nothing of alice's.
    const list = await b.send(marshalCommand(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x80000000, propertyCount: 16 }));
    expect(unmarshalResponse(C.GetCapability, list).output.capabilityData).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
    for (const c of [a1, a2, b]) c.close();
    await settled();
    expect(await transients(env)).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
  });

  it('an attack corpus leaves EVE’s planted objects, NV, PCRs and the lockout counter as they were', async () => {
    // EVE's objects, planted straight on the chip: its SRK at 0x81000001, its AK at 0x81000003, an NV index of its range.
    const eveNv = 0x01800000;
    const before = await env.onTpm(async (t) => {
      for (const h of [0x81000001, 0x81000003]) {
        const made = await t.run(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: { ...signing, unique: { x: Uint8Array.of(h % 256), y: new Uint8Array(0) } } as never, outsideInfo: new Uint8Array(0), creationPCR: [] });
        await t.run(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: made.objectHandle, persistentHandle: h });
        await t.run(C.FlushContext, { flushHandle: made.objectHandle });
      }
      await t.run(NvDefine, { authHandle: TPM_RH.OWNER, auth: new Uint8Array(0), publicInfo: { nvIndex: eveNv, nameAlg: TPM_ALG.SHA256, attributes: 0x00060006 /* owner write/read, authread/authwrite */, authPolicy: new Uint8Array(0), dataSize: 8 } as never });
      return eveSnapshot(t, eveNv);
    });
    const c = await raw('alice');
    const pw = passwordAuth();
    const corpus: Array<[string, Uint8Array, number]> = [
      ...NEVER.map(([name, code]): [string, Uint8Array, number] => [name, bare(code), TPM_RC.COMMAND_CODE]),
      ['ReadPublic(EVE SRK)', marshalCommand(C.ReadPublic, { objectHandle: 0x81000001 }), TPM_RC.HANDLE + 0x100],
      ['FlushContext(EVE AK)', marshalCommand(C.FlushContext, { flushHandle: 0x81000003 }), TPM_RC.HANDLE + 0x40 + 0x100],
      ['Sign(EVE AK)', marshalCommand(C.Sign, { keyHandle: 0x81000003, digest: new Uint8Array(32), inScheme: { scheme: TPM_ALG.NULL, details: null } as never, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) } }, { keyHandle: pw }), TPM_RC.HANDLE + 0x100],
      ['NV_Read(EVE NV, owner)', marshalCommand(C.NV_Read, { authHandle: TPM_RH.OWNER, nvIndex: eveNv, size: 8, offset: 0 }, { authHandle: pw }), TPM_RC.HANDLE + 0x200],
      ['CreatePrimary(platform)', primaryIn(TPM_RH.PLATFORM), TPM_RC.HIERARCHY + 0x100],
      ['EvictControl(persist into EVE AK)', marshalCommand(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: 0x80000000, persistentHandle: 0x81000003 }, { auth: pw }), TPM_RC.RANGE + 0x40 + 0x100],
      ['EvictControl(evict EVE SRK)', marshalCommand(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: 0x81000001, persistentHandle: 0x81000001 }, { auth: pw }), TPM_RC.RANGE + 0x40 + 0x100],
      ['CreatePrimary(owner, wrong password)', marshalCommand(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: signing as never, outsideInfo: new Uint8Array(0), creationPCR: [] }, { primaryHandle: passwordAuth(Uint8Array.of(1)) }), TPM_RC.BAD_AUTH + 0x800 + 0x100],
      ['Hash(platform ticket)', marshalCommand(C.Hash, { data: new Uint8Array(4), hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.PLATFORM }), TPM_RC.HIERARCHY + 0x40 + 0x300],
    ];
    for (const [name, bytes, want] of corpus) expect(rcOf(await c.send(bytes)), name).toBe(want);
    // EvictControl in its own range of a NULL-hierarchy primary: the service cannot make it again (test/raw/persistent.test.ts).
    const persist = marshalCommand(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: u32At(await c.send(primary(TPM_RH.NULL)), 10), persistentHandle: 0x81000100 }, { auth: pw });
    expect(rcOf(await c.send(persist))).toBe(TPM_RC.ATTRIBUTES + 0x200);
    c.close();
    await settled();
    expect(await env.onTpm((t) => eveSnapshot(t, eveNv))).toEqual(before);
  });

  it('fuzz: random frames (allowed codes and any, sessions or not) each get one TPM response; nothing stays loaded', async () => {
    const c = await raw('bob');
    const codes = [...RULES.keys(), 0x131, 0x120, 0x126, 0x182, 0x20000000];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0x8001, 0x8002, 0x00c1), fc.constantFrom(...codes), fc.uint8Array({ maxLength: 96 }), async (tag, code, body) => {
        const f = new Uint8Array(10 + body.length);
        const v = new DataView(f.buffer);
        v.setUint16(0, tag);
        v.setUint32(2, f.length);
        v.setUint32(6, code);
        f.set(body, 10);
        const r = await c.send(f);
        expect(r.length).toBeGreaterThanOrEqual(10);
        expect(u32At(r, 2)).toBe(r.length);
      }),
      { numRuns: 300, seed: 15 },
    );
    expect(rcOf(await c.send(getRandom))).toBe(0);
    c.close();
    await settled();
    expect(await transients(env)).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
  });

  it('a frame trickled byte by byte is cut at its deadline, counted from its first byte', async () => {
    await env.restartService({ headersTimeoutMs: 400 });
    const c = await raw('alice');
    expect(rcOf(await c.send(getRandom))).toBe(0);
    // A 4096-byte frame announced, then one byte at a time: each byte comes well within the deadline.
    c.write(Uint8Array.from([0x80, 0x01, 0, 0, 0x10, 0]));
    let gone = false;
    const closed = c.closed().then(() => (gone = true));
    for (let i = 0; i < 400 && !gone; i++) {
      c.write(Uint8Array.of(0));
      await new Promise((r) => setTimeout(r, 50));
    }
    await closed;
    expect(env.logs.some((l) => l.event === 'raw-timeout' && l.why === 'a frame did not arrive in time')).toBe(true);
  });

  it('rawChannel false: the upgrade is refused as any other (400), /v1 unchanged', async () => {
    await env.restartService({ rawChannel: false });
    const c = await raw('alice');
    expect(c.status).toBe(400);
    expect(JSON.parse(c.body).error.message).toMatch(/upgrades are not supported/);
    expect((await env.client('alice').request('list-keys', {})).keys).toEqual([]);
    // Not offered: capabilities leave it out, and a plain GET says the channel is off.
    const caps = await env.client('alice').request('capabilities', {});
    expect(caps.operations.map((o) => o.op)).not.toContain('raw-tpm');
    await expect(env.client('alice').request('raw-tpm', {})).rejects.toMatchObject({ status: 422, message: expect.stringMatching(/turned off/) });
  });
});

/** A command frame of `code` with no handles or parameters: the firewall refuses it by its code. */
function bare(code: number): Uint8Array {
  const f = new Uint8Array(10);
  const v = new DataView(f.buffer);
  v.setUint16(0, TPM_ST.NO_SESSIONS);
  v.setUint32(2, 10);
  v.setUint32(6, code);
  return f;
}

/** The "never" rows of docs/FIREWALL.md's policy table. */
const NEVER: Array<[string, number]> = [
  ['NV_UndefineSpaceSpecial', 0x11f], ['HierarchyControl', 0x121], ['ChangeEPS', 0x124], ['ChangePPS', 0x125], ['Clear', 0x126], ['ClearControl', 0x127],
  ['ClockSet', 0x128], ['HierarchyChangeAuth', 0x129], ['PCR_Allocate', 0x12b], ['PCR_SetAuthPolicy', 0x12c], ['PP_Commands', 0x12d], ['SetPrimaryPolicy', 0x12e],
  ['FieldUpgradeStart', 0x12f], ['ClockRateAdjust', 0x130], ['NV_GlobalWriteLock', 0x132], ['GetCommandAuditDigest', 0x133], ['DictionaryAttackLockReset', 0x139],
  ['DictionaryAttackParameters', 0x13a], ['PCR_Event', 0x13c], ['PCR_Reset', 0x13d], ['SetAlgorithmSet', 0x13f], ['SetCommandCodeAuditStatus', 0x140],
  ['FieldUpgradeData', 0x141], ['Startup', 0x144], ['Shutdown', 0x145], ['GetTime', 0x14c], ['GetSessionAuditDigest', 0x14d], ['FirmwareRead', 0x179],
  ['PCR_Extend', 0x182], ['PCR_SetAuthValue', 0x183], ['AC_GetCapability', 0x194], ['AC_Send', 0x195], ['Policy_AC_SendSelect', 0x196], ['ACT_SetTimeout', 0x198],
  ['SetCapability', 0x19f], ['ReadOnlyControl', 0x1a0], ['PolicyTransportSPDM', 0x1a1], ['vendor', 0x20000000],
];

const primaryIn = (hierarchy: number): Uint8Array =>
  marshalCommand(C.CreatePrimary, { primaryHandle: hierarchy, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: signing as never, outsideInfo: new Uint8Array(0), creationPCR: [] }, { primaryHandle: passwordAuth() });
