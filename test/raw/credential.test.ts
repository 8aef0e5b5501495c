/**
 * The app's EK through the raw channel (docs/FIREWALL.md "The EK"): stock tpm2_createek +
 * tpm2_createak + tpm2_makecredential (verifier side, no TPM) + tpm2_activatecredential through
 * the cmd TCTI against swtpm, RSA and ECC. The app's EK is its own virtual one: credentials made
 * for another app's AK, for EVE's AIK or for the chip's EK do not open, and the
 * PolicySecret(TPM_RH_ENDORSEMENT) the EK's policy needs authorizes nothing outside the app.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, passwordAuth, unmarshalResponse, type Authorization } from '../../src/tpm/command.js';
import { TPM2B_PUBLIC } from '../../src/tpm/structures.js';
import { encode } from '../../src/tpm/wire/codec.js';
import { EK_POLICY_A_SHA256 } from '../../src/tpm/keys/templates.js';
import { createAk, persistKey } from '../../src/tpm/ops/ak.js';
import { createTransientEk } from '../../src/tpm/ops/ek.js';
import type { TpmRunner } from '../../src/tpm/index.js';
import { NV_DefineSpace as NvDefine, NV_Write } from '../../src/firewall/commands.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { bundleTcti, openRaw, rawSettled, rcOf, stockToolsThere, tctiEnv, u32At } from './helpers.js';

const toolsThere = stockToolsThere();

/** EVE's objects, planted straight on the chip as EVE has them (docs/EVE.md): EK, AIK under it, an NV index under the EK's policy. */
const EVE_EK = 0x81000001;
const EVE_AIK = 0x81000003;
const EVE_NV = 0x01800100;
const EMPTY = new Uint8Array(0);
// Part 2 §6.6.3: format-one codes name handle n (+0x100·n), parameter n (+0x40 +0x100·n), session n (+0x800 +0x100·n).
const H = (rc: number, n: number): number => rc + 0x100 * n;
const P = (rc: number, n: number): number => rc + 0x40 + 0x100 * n;
const S = (rc: number, n: number): number => rc + 0x800 + 0x100 * n;

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !toolsThere, 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('the app’s EK: credential activation through the cmd TCTI', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  let before: unknown;
  let eveAikName: string;
  const envFor = (tenant: string): NodeJS.ProcessEnv => tctiEnv(tcti, env.unix, env.secrets[tenant]);
  const ok = (tenant: string, name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, { cwd: work.dir, env: envFor(tenant), timeoutMs: 60_000 });
  const fails = (tenant: string, name: string, ...args: string[]): Promise<RunResult> => run(name, args, { cwd: work.dir, env: envFor(tenant), timeoutMs: 60_000 });
  /** The verifier's side: no TPM at all. */
  const makeCredential = async (ekPub: string, akName: string, secret: string, out: string): Promise<void> => {
    await runOk('tpm2_makecredential', ['-T', 'none', '-e', ekPub, '-s', secret, '-n', akName, '-o', out], { cwd: work.dir, env: { PATH: process.env.PATH }, timeoutMs: 60_000 });
  };
  const hexOf = async (file: string): Promise<string> => Buffer.from(await readFile(join(work.dir, file))).toString('hex');
  /**
   * tpm2_activatecredential as tpm2-tools 5 documents it: the EK's policy (PolicySecret of the
   * endorsement hierarchy) in a session made by tpm2_startauthsession + tpm2_policysecret, each
   * its own run and connection (the app's saved session outlives them, kept-sessions.ts).
   */
  const activate = async (tenant: string, ak: string, ek: string, cred: string, out: string): Promise<RunResult> => {
    const session = `${out}.session`;
    await ok(tenant, 'tpm2_startauthsession', '--policy-session', '-S', session);
    await ok(tenant, 'tpm2_policysecret', '-S', session, '-c', 'e');
    const r = await fails(tenant, 'tpm2_activatecredential', '-c', ak, '-C', ek, '-i', cred, '-o', out, '-P', `session:${session}`);
    // After a failed command the tool does not save the session again: the connection flushed it.
    if (r.code === 0) await ok(tenant, 'tpm2_flushcontext', session);
    return r;
  };
  /** tpm2_createek + tpm2_createak for `tenant`, files prefixed with `p`. */
  const ekAndAk = async (tenant: string, p: string, type: 'rsa' | 'ecc'): Promise<void> => {
    await ok(tenant, 'tpm2_createek', '-c', `${p}ek.ctx`, '-G', type, '-u', `${p}ek.pub`);
    await ok(tenant, 'tpm2_createak', '-C', `${p}ek.ctx`, '-c', `${p}ak.ctx`, '-G', type, '-g', 'sha256', '-s', type === 'rsa' ? 'rsassa' : 'ecdsa', '-u', `${p}ak.pub`, '-n', `${p}ak.name`);
  };

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-cred-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'secret'), randomBytes(32));
    ({ before, eveAikName } = await env.onTpm(async (t) => {
      const ek = await createTransientEk(t, 'rsa');
      await t.run(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: ek.handle, persistentHandle: EVE_EK });
      await t.run(C.FlushContext, { flushHandle: ek.handle });
      await writeFile(join(work.dir, 'chip-ek.pub'), encode(TPM2B_PUBLIC, (await t.run(C.ReadPublic, { objectHandle: EVE_EK })).outPublic));
      const aik = await createAk(t, 'rsa', { ekHandles: [EVE_EK] });
      await persistKey(t, aik, EVE_AIK, { ekHandles: [EVE_EK] });
      // An NV index EVE could gate with the EK's own policy: PolicySecret(TPM_RH_ENDORSEMENT).
      const POLICYWRITE_POLICYREAD_NO_DA = 0x00000008 + 0x00080000 + 0x02000000;
      await t.run(NvDefine, { authHandle: TPM_RH.OWNER, auth: EMPTY, publicInfo: { nvIndex: EVE_NV, nameAlg: TPM_ALG.SHA256, attributes: POLICYWRITE_POLICYREAD_NO_DA, authPolicy: EK_POLICY_A_SHA256, dataSize: 8 } as never });
      return { before: await snapshot(t), eveAikName: Buffer.from(aik.name).toString('hex') };
    }));
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  for (const type of ['rsa', 'ecc'] as const) {
    it(`tpm2_createek -G ${type} → tpm2_createak → tpm2_makecredential -T none → tpm2_activatecredential gives the secret back`, async () => {
      await ekAndAk('alice', `${type}-`, type);
      await makeCredential(`${type}-ek.pub`, await hexOf(`${type}-ak.name`), 'secret', `${type}.cred`);
      expect((await activate('alice', `${type}-ak.ctx`, `${type}-ek.ctx`, `${type}.cred`, `${type}.out`)).code).toBe(0);
      expect(await readFile(join(work.dir, `${type}.out`))).toEqual(await readFile(join(work.dir, 'secret')));
      // Without the policy session tpm2-tools 5.4 sends the EK an empty password: the chip's TPM_RC_AUTH_UNAVAILABLE, as on any TPM.
      const bare = await fails('alice', 'tpm2_activatecredential', '-c', `${type}-ak.ctx`, '-C', `${type}-ek.ctx`, '-i', `${type}.cred`, '-o', `${type}.bare`);
      expect(bare.stderr).toMatch(/Esys_ActivateCredential\(0x12F\)/);
      // The app's EK is its own: the same template gives it the same key again, never the chip's.
      await ok('alice', 'tpm2_createek', '-c', `${type}-ek2.ctx`, '-G', type, '-u', `${type}-ek2.pub`);
      expect(await hexOf(`${type}-ek2.pub`)).toBe(await hexOf(`${type}-ek.pub`));
      if (type === 'rsa') expect(await hexOf('rsa-ek.pub')).not.toBe(await hexOf('chip-ek.pub'));
    }, 120_000);
  }

  it('a credential for another app’s AK Name, for EVE’s AIK Name or for the chip’s EK does not open', async () => {
    await ekAndAk('bob', 'bob-', 'rsa');
    // Alice's EK, bob's AK Name: the TPM checks the credential's HMAC over alice's AK Name.
    await makeCredential('rsa-ek.pub', await hexOf('bob-ak.name'), 'secret', 'for-bob.cred');
    const forBob = await activate('alice', 'rsa-ak.ctx', 'rsa-ek.ctx', 'for-bob.cred', 'for-bob.out');
    expect(forBob.code).not.toBe(0);
    expect(forBob.stderr).toMatch(/Esys_ActivateCredential\(0x1DF\)/); // TPM_RC_INTEGRITY + P1, the chip's
    // Bob's own credential: alice's EK cannot open it, and bob's context files are not hers to load.
    await makeCredential('bob-ek.pub', await hexOf('bob-ak.name'), 'secret', 'bobs.cred');
    const bobs = await activate('alice', 'rsa-ak.ctx', 'rsa-ek.ctx', 'bobs.cred', 'bobs.out');
    expect(bobs.code).not.toBe(0);
    // The chip's answer to a seed that does not decrypt (swtpm: TPM_RC_FAILURE; the command reached it).
    expect(bobs.stderr).toMatch(/Esys_ActivateCredential\(0x[0-9A-F]+\)/);
    const stolen = await activate('alice', 'bob-ak.ctx', 'bob-ek.ctx', 'bobs.cred', 'bobs.out');
    expect(stolen.code).not.toBe(0);
    expect(stolen.stderr).toMatch(/Esys_ContextLoad\(0x1DF\)/); // the firewall: not a context alice saved
    expect((await activate('bob', 'bob-ak.ctx', 'bob-ek.ctx', 'bobs.cred', 'bobs.out')).code).toBe(0);
    expect(await readFile(join(work.dir, 'bobs.out'))).toEqual(await readFile(join(work.dir, 'secret')));
    // EVE's AIK Name under alice's EK: her own AK's Name is another.
    await makeCredential('rsa-ek.pub', eveAikName, 'secret', 'for-eve.cred');
    const forEve = await activate('alice', 'rsa-ak.ctx', 'rsa-ek.ctx', 'for-eve.cred', 'for-eve.out');
    expect(forEve.code).not.toBe(0);
    expect(forEve.stderr).toMatch(/Esys_ActivateCredential\(0x1DF\)/);
    // EVE's AIK Name under the chip's EK, as a verifier of EVE makes it: alice's EK is not the chip's.
    await makeCredential('chip-ek.pub', eveAikName, 'secret', 'eve.cred');
    const eve = await activate('alice', 'rsa-ak.ctx', 'rsa-ek.ctx', 'eve.cred', 'eve.out');
    expect(eve.code).not.toBe(0);
    expect(eve.stderr).toMatch(/Esys_ActivateCredential\(0x[0-9A-F]+\)/);
    // EVE's EK and AIK by handle: not the app's to name.
    const byHandle = await activate('alice', `0x${EVE_AIK.toString(16)}`, `0x${EVE_EK.toString(16)}`, 'eve.cred', 'eve.out');
    expect(byHandle.code).not.toBe(0);
    expect(byHandle.stderr).toMatch(/\(0x18B\)/); // TPM_RC_HANDLE + H1: as for a handle that does not exist
  }, 180_000);

  it('a session the app saved outlives its run for the app only; at most 4 are kept, older ones flushed', async () => {
    for (let i = 0; i < 6; i++) await ok('alice', 'tpm2_startauthsession', '--policy-session', '-S', `kept-${i}.ctx`);
    await rawSettled(env);
    expect(await sessionsOnChip(env)).toHaveLength(4);
    // Bob cannot load alice's session; alice cannot load the two flushed ones any more.
    const bobs = await fails('bob', 'tpm2_policysecret', '-S', 'kept-5.ctx', '-c', 'e');
    expect(bobs.stderr).toMatch(/Esys_ContextLoad\(0x1DF\)/);
    for (const i of [0, 1]) expect((await fails('alice', 'tpm2_flushcontext', `kept-${i}.ctx`)).code).not.toBe(0);
    for (const i of [2, 3, 4, 5]) await ok('alice', 'tpm2_flushcontext', `kept-${i}.ctx`);
    await rawSettled(env);
    expect(await sessionsOnChip(env)).toEqual([]);
  }, 120_000);

  it('attack: PolicySecret(TPM_RH_ENDORSEMENT) authorizes nothing outside the app (EVE’s NV index, EK, AIK; another app’s EK)', async () => {
    const c = await openRaw(env.unix, env.secrets.alice);
    try {
      const policy = async (): Promise<number> => {
        const started = await c.send(
          marshalCommand(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: EMPTY, sessionType: 1 as never, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never, authHash: TPM_ALG.SHA256 }),
        );
        expect(rcOf(started)).toBe(0);
        return u32At(started, 10);
      };
      const secret = (session: number, expiration = 0, auth: Authorization = passwordAuth(), authHandle: number = TPM_RH.ENDORSEMENT) =>
        c.send(marshalCommand(C.PolicySecret, { authHandle, policySession: session, nonceTPM: EMPTY, cpHashA: EMPTY, policyRef: EMPTY, expiration }, { authHandle: auth }));
      const s1 = await policy();
      // What the app may do: PolicySecret(endorsement) with the virtual endorsement's empty password; the digest is the EK's policy A.
      expect(rcOf(await secret(s1))).toBe(0);
      const digest = await c.send(marshalCommand(C.PolicyGetDigest, { policySession: s1 }));
      expect(Buffer.from(unmarshalResponse(C.PolicyGetDigest, digest).output.policyDigest)).toEqual(Buffer.from(EK_POLICY_A_SHA256));
      const session: Authorization = { sessionHandle: s1, nonceCaller: EMPTY, sessionAttributes: 1, hmac: EMPTY };
      // That session against EVE's objects: never named.
      const attacks: Array<[string, Uint8Array, number]> = [
        ['NV_Read(EVE’s index under policy A)', marshalCommand(C.NV_Read, { authHandle: EVE_NV, nvIndex: EVE_NV, size: 8, offset: 0 }, { authHandle: session }), H(TPM_RC.HANDLE, 1)],
        ['Create under EVE’s EK', marshalCommand(C.Create, { parentHandle: EVE_EK, inSensitive: { userAuth: EMPTY, data: EMPTY }, inPublic: (await chipPublic(env, EVE_AIK)) as never, outsideInfo: EMPTY, creationPCR: [] }, { parentHandle: session }), H(TPM_RC.HANDLE, 1)],
        ['ActivateCredential(EVE’s AIK, EVE’s EK)', marshalCommand(C.ActivateCredential, { activateHandle: EVE_AIK, keyHandle: EVE_EK, credentialBlob: new Uint8Array(34), secret: new Uint8Array(256) }, { activateHandle: passwordAuth(), keyHandle: session }), H(TPM_RC.HANDLE, 1)],
        ['NV_Write(EVE’s index under policy A)', marshalCommand(NV_Write, { authHandle: EVE_NV, nvIndex: EVE_NV, data: new Uint8Array(8), offset: 0 }, { authHandle: session }), H(TPM_RC.HANDLE, 1)],
      ];
      for (const [name, frame, want] of attacks) expect(rcOf(await c.send(frame)), name).toBe(want);
      // The real endorsement authorization never leaves the session: no ticket, no other hierarchy, no other password.
      const s2 = await policy();
      expect(rcOf(await secret(s2, -1))).toBe(P(TPM_RC.VALUE, 4));
      expect(rcOf(await secret(s2, 0, passwordAuth(Uint8Array.of(1))))).toBe(S(TPM_RC.BAD_AUTH, 1));
      for (const h of [TPM_RH.OWNER, TPM_RH.PLATFORM, TPM_RH.LOCKOUT]) expect(rcOf(await secret(s2, 0, passwordAuth(), h)), `PolicySecret(0x${h.toString(16)})`).toBe(H(TPM_RC.HIERARCHY, 1));
      expect(rcOf(await secret(s2, 0, { sessionHandle: s1, nonceCaller: new Uint8Array(16), sessionAttributes: 1, hmac: EMPTY }))).toBe(TPM_RC.AUTH_TYPE);
    } finally {
      c.close();
    }
    await rawSettled(env);
    expect(await env.onTpm((t) => snapshot(t))).toEqual(before);
    expect(await sessionsOnChip(env)).toEqual([]);
  }, 120_000);
});


/** Sessions on the chip: the loaded (TPM_HT_LOADED_SESSION) and the saved (TPM_HT_SAVED_SESSION) lists. */
async function sessionsOnChip(env: TestEnv): Promise<unknown[]> {
  return env.onTpm(async (t) => {
    const out: unknown[] = [];
    for (const property of [0x02000000, 0x03000000]) {
      const r = await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property, propertyCount: 64 });
      out.push(...(r.capabilityData.data as unknown[]));
    }
    return out;
  });
}

async function chipPublic(env: TestEnv, handle: number): Promise<unknown> {
  return env.onTpm(async (t) => (await t.run(C.ReadPublic, { objectHandle: handle })).outPublic);
}

/** What the tests must leave as it was: EVE's EK, AIK and NV index, the endorsement hierarchy's authorization, the lockout counter. */
async function snapshot(t: TpmRunner): Promise<unknown> {
  const names = [];
  for (const h of [EVE_EK, EVE_AIK]) names.push(Buffer.from((await t.run(C.ReadPublic, { objectHandle: h })).name).toString('hex'));
  const nvName = Buffer.from((await t.run(C.NV_ReadPublic, { nvIndex: EVE_NV })).nvName).toString('hex');
  // TPM_PT_PERMANENT (endorsementAuthSet, ownerAuthSet, lockoutAuthSet) and TPM_PT_LOCKOUT_COUNTER.
  const permanent = (await t.run(C.GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property: 0x200, propertyCount: 1 })).capabilityData;
  const lockout = (await t.run(C.GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property: 0x20e, propertyCount: 1 })).capabilityData;
  // The endorsement hierarchy still takes the empty password: the EK's policy is still satisfied with it.
  const s = await t.run(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: EMPTY, sessionType: 1 as never, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never, authHash: TPM_ALG.SHA256 });
  await t.run(C.PolicySecret, { authHandle: TPM_RH.ENDORSEMENT, policySession: s.sessionHandle, nonceTPM: EMPTY, cpHashA: EMPTY, policyRef: EMPTY, expiration: 0 });
  await t.run(C.FlushContext, { flushHandle: s.sessionHandle });
  return { names, nvName, permanent, lockout };
}
