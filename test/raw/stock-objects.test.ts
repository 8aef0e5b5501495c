/**
 * Object commands with stock tpm2-tools through the cmd TCTI (object-rules.ts) on the app's own
 * keys: HMAC (one shot and as a sequence) with an imported key of known bytes, ObjectChangeAuth,
 * Duplicate + Import between two of the app's keys, CertifyCreation, CreateLoaded; another app
 * cannot use any of them.
 */
import { createHmac } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { TPM_ALG, TPM_CAP, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, passwordAuth } from '../../src/tpm/command.js';
import { NV_DefineSpace } from '../../src/firewall/commands.js';
import * as N from '../../src/firewall/commands-nv.js';
import * as O from '../../src/firewall/commands-objects.js';
import * as P from '../../src/firewall/commands-policy.js';
import { bundleTcti, openRaw, rcOf, rawSettled, stockToolsThere, tctiEnv, u32At, eveSnapshot } from './helpers.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !stockToolsThere(), 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('object commands with stock tpm2-tools', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  const key = Buffer.from('0123456789abcdef0123456789abcdef');
  const big = Buffer.alloc(3000, 'x');
  const opts = (tenant: string) => ({ cwd: work.dir, env: tctiEnv(tcti, env.unix, env.secrets[tenant]), timeoutMs: 60_000 });
  const alice = (name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, opts('alice'));
  const aliceMay = (name: string, ...args: string[]): Promise<RunResult> => run(name, args, opts('alice'));
  const bob = (name: string, ...args: string[]): Promise<RunResult> => run(name, args, opts('bob'));

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-objects-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'msg.txt'), 'hello objects\n');
    await writeFile(join(work.dir, 'big.bin'), big);
    await writeFile(join(work.dir, 'hmac.key'), key);
    await alice('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'primary.ctx');
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('tpm2_import of an HMAC key, then tpm2_hmac (HMAC, and HMAC_Start for a large input) matches', async () => {
    await alice('tpm2_import', '-C', 'primary.ctx', '-G', 'hmac', '-i', 'hmac.key', '-u', 'hmac.pub', '-r', 'hmac.priv');
    await alice('tpm2_load', '-C', 'primary.ctx', '-u', 'hmac.pub', '-r', 'hmac.priv', '-c', 'hmac.ctx');
    const small = await alice('tpm2_hmac', '-c', 'hmac.ctx', '--hex', 'msg.txt');
    expect(small.stdout.trim()).toBe(createHmac('sha256', key).update('hello objects\n').digest('hex'));
    const seq = await alice('tpm2_hmac', '-c', 'hmac.ctx', '--hex', 'big.bin');
    expect(seq.stdout.trim()).toBe(createHmac('sha256', key).update(big).digest('hex'));
    // bob cannot load alice's key context, nor HMAC with it.
    const r = await bob('tpm2_hmac', '-c', 'hmac.ctx', '--hex', 'msg.txt');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/0x14[0-9a-f]|integrity/i);
  });

  it('tpm2_changeauth on a key (ObjectChangeAuth): the new private signs with the new password only', async () => {
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-p', 'old', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k.ctx');
    await alice('tpm2_changeauth', '-c', 'k.ctx', '-C', 'primary.ctx', '-p', 'old', '-r', 'k2.priv', 'new');
    await alice('tpm2_load', '-C', 'primary.ctx', '-u', 'k.pub', '-r', 'k2.priv', '-c', 'k2.ctx');
    await alice('tpm2_sign', '-c', 'k2.ctx', '-p', 'new', '-g', 'sha256', '-o', 'k2.sig', 'msg.txt');
    await alice('tpm2_verifysignature', '-c', 'k2.ctx', '-g', 'sha256', '-m', 'msg.txt', '-s', 'k2.sig');
    const r = await bob('tpm2_changeauth', '-c', 'k.ctx', '-C', 'primary.ctx', '-p', 'old', '-r', 'stolen.priv', 'mine');
    expect(r.code).not.toBe(0);
  });

  it('tpm2_duplicate + tpm2_import between two of the app’s own keys (PolicyCommandCode(Duplicate))', async () => {
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policycommandcode', '-S', 'trial.ctx', '-L', 'dup.policy', 'TPM2_CC_Duplicate');
    await alice('tpm2_flushcontext', 'trial.ctx');
    // The key to move (no fixedparent), and its new parent: a restricted decryption key of the app.
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-L', 'dup.policy', '-a', 'sensitivedataorigin|userwithauth|sign', '-u', 'mv.pub', '-r', 'mv.priv', '-c', 'mv.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc:null:aes128cfb', '-a', 'decrypt|fixedparent|fixedtpm|restricted|sensitivedataorigin|userwithauth', '-u', 'np.pub', '-r', 'np.priv', '-c', 'np.ctx');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'dup.ctx');
    await alice('tpm2_policycommandcode', '-S', 'dup.ctx', 'TPM2_CC_Duplicate');
    await alice('tpm2_duplicate', '-C', 'np.ctx', '-c', 'mv.ctx', '-G', 'null', '-p', 'session:dup.ctx', '-r', 'dup.priv', '-s', 'dup.seed');
    await aliceMay('tpm2_flushcontext', 'dup.ctx');
    await alice('tpm2_import', '-C', 'np.ctx', '-u', 'mv.pub', '-i', 'dup.priv', '-s', 'dup.seed', '-r', 'moved.priv');
    await alice('tpm2_load', '-C', 'np.ctx', '-u', 'mv.pub', '-r', 'moved.priv', '-c', 'moved.ctx');
    await alice('tpm2_sign', '-c', 'moved.ctx', '-g', 'sha256', '-o', 'moved.sig', 'msg.txt');
    await alice('tpm2_verifysignature', '-c', 'mv.ctx', '-g', 'sha256', '-m', 'msg.txt', '-s', 'moved.sig');
    // bob cannot import alice's duplicate under alice's key.
    const r = await bob('tpm2_import', '-C', 'np.ctx', '-u', 'mv.pub', '-i', 'dup.priv', '-s', 'dup.seed', '-r', 'bob.priv');
    expect(r.code).not.toBe(0);
  }, 120_000);

  it('EncryptDecrypt (0x164; tpm2-tools take EncryptDecrypt2) with the app’s AES key, frames on the raw channel', async () => {
    const aes = { type: TPM_ALG.SYMCIPHER, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x60072, authPolicy: new Uint8Array(0), parameters: { sym: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } }, unique: new Uint8Array(0) };
    const c = await openRaw(env.unix, env.secrets.alice);
    const made = await c.send(marshalCommand(C.CreatePrimary, { primaryHandle: TPM_RH.NULL, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: aes as never, outsideInfo: new Uint8Array(0), creationPCR: [] }, { primaryHandle: passwordAuth() }));
    expect(rcOf(made)).toBe(0);
    const keyHandle = u32At(made, 10);
    const plain = Buffer.from('sixteen bytes...and more');
    const run = (decrypt: boolean, inData: Uint8Array) => c.send(marshalCommand(O.EncryptDecrypt, { keyHandle, decrypt, mode: TPM_ALG.CFB, ivIn: new Uint8Array(16), inData } as never, { keyHandle: passwordAuth() }));
    // Response: header(10), parameterSize(4), outData (TPM2B), ivOut, auth area.
    const out = (r: Uint8Array) => r.subarray(16, 16 + new DataView(r.buffer, r.byteOffset).getUint16(14));
    const enc = await run(false, plain);
    expect(rcOf(enc)).toBe(0);
    expect(Buffer.from(out(enc)).equals(plain)).toBe(false);
    const dec = await run(true, out(enc));
    expect(Buffer.from(out(dec))).toEqual(plain);
    // bob's connection: alice's handle names nothing of his.
    const b = await openRaw(env.unix, env.secrets.bob);
    const theirs = await b.send(marshalCommand(O.EncryptDecrypt, { keyHandle, decrypt: false, mode: TPM_ALG.CFB, ivIn: new Uint8Array(16), inData: plain } as never, { keyHandle: passwordAuth() }));
    expect(rcOf(theirs)).toBe(TPM_RC.REFERENCE_H0);
    c.close();
    b.close();
    await rawSettled(env);
  });

  it('a key made by CreateLoaded (tpm2_create -c) can be made persistent and used by its virtual handle', async () => {
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'cl.pub', '-r', 'cl.priv', '-c', 'cl.ctx');
    await alice('tpm2_evictcontrol', '-C', 'o', '-c', 'cl.ctx', '0x81000180');
    await alice('tpm2_sign', '-c', '0x81000180', '-g', 'sha256', '-o', 'cl.sig', 'msg.txt');
    await alice('tpm2_verifysignature', '-c', 'cl.ctx', '-g', 'sha256', '-m', 'msg.txt', '-s', 'cl.sig');
    await alice('tpm2_evictcontrol', '-C', 'o', '-c', '0x81000180');
  });

  it('tpm2_certifycreation of the app’s key, signed by another of its keys', async () => {
    // (tpm2-tools 5.4 cannot give -c together with the creation outputs: load it apart.)
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'cc.pub', '-r', 'cc.priv', '--creation-data', 'cc.data', '-d', 'cc.dig', '-t', 'cc.ticket');
    await alice('tpm2_load', '-C', 'primary.ctx', '-u', 'cc.pub', '-r', 'cc.priv', '-c', 'cc.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'signer.pub', '-r', 'signer.priv', '-c', 'signer.ctx');
    await alice('tpm2_certifycreation', '-C', 'signer.ctx', '-c', 'cc.ctx', '-d', 'cc.dig', '-t', 'cc.ticket', '-g', 'sha256', '-o', 'cc.sig', '--attestation', 'cc.att', '-f', 'plain', '-s', 'ecdsa');
    const att = await readFile(join(work.dir, 'cc.att'));
    expect(att.readUInt32BE(0)).toBe(0xff544347);
    expect(att.readUInt16BE(4)).toBe(0x801a); // TPM_ST_ATTEST_CREATION
    // A ticket for another object: the chip's own check (TPM_RC_TICKET).
    const wrong = await aliceMay('tpm2_certifycreation', '-C', 'signer.ctx', '-c', 'signer.ctx', '-d', 'cc.dig', '-t', 'cc.ticket', '-g', 'sha256', '-o', 'x.sig', '--attestation', 'x.att', '-f', 'plain', '-s', 'ecdsa');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/0x[0-9a-f]*a0|ticket/i);
  });

  it('an attack corpus on the new rows: EVE’s planted objects and NV, the PCRs and the lockout counter stay as they were', async () => {
    const eveNv = 0x01800000;
    const empty = new Uint8Array(0);
    const before = await env.onTpm(async (t) => {
      const signing = { type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x00040072, authPolicy: empty, parameters: { symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null }, scheme: { scheme: TPM_ALG.NULL, details: null }, curveID: 0x0003, kdf: { scheme: TPM_ALG.NULL, details: null } }, unique: { x: empty, y: empty } };
      for (const h of [0x81000001, 0x81000003]) {
        const made = await t.run(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, inSensitive: { userAuth: empty, data: empty }, inPublic: { ...signing, unique: { x: Uint8Array.of(h % 256), y: empty } } as never, outsideInfo: empty, creationPCR: [] });
        await t.run(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: made.objectHandle, persistentHandle: h });
        await t.run(C.FlushContext, { flushHandle: made.objectHandle });
      }
      await t.run(NV_DefineSpace, { authHandle: TPM_RH.OWNER, auth: empty, publicInfo: { nvIndex: eveNv, nameAlg: TPM_ALG.SHA256, attributes: 0x00060006, authPolicy: empty, dataSize: 8 } as never });
      return eveSnapshot(t, eveNv);
    });
    const c = await openRaw(env.unix, env.secrets.alice);
    const pw = passwordAuth();
    const session = u32At(await c.send(marshalCommand(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: empty, sessionType: 1 as never, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never, authHash: TPM_ALG.SHA256 })), 10);
    const SRK = 0x81000001;
    const AK = 0x81000003;
    const H1 = TPM_RC.HANDLE + 0x100;
    const H2 = TPM_RC.HANDLE + 0x200;
    const SYM_NULL = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } as never;
    const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as never;
    const pub = { type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x40, authPolicy: empty, parameters: { scheme: NULL_SCHEME }, unique: new Uint8Array(32) } as never;
    const corpus: Array<[string, Uint8Array, number]> = [
      ['HMAC(EVE SRK)', marshalCommand(O.HMAC, { handle: SRK, buffer: Uint8Array.of(1), hashAlg: TPM_ALG.SHA256 } as never, { handle: pw }), H1],
      ['HMAC_Start(EVE AK)', marshalCommand(O.HMAC_Start, { handle: AK, auth: empty, hashAlg: TPM_ALG.SHA256 } as never, { handle: pw }), H1],
      ['EncryptDecrypt(EVE SRK)', marshalCommand(O.EncryptDecrypt, { keyHandle: SRK, decrypt: false, mode: TPM_ALG.CFB, ivIn: new Uint8Array(16), inData: Uint8Array.of(1) } as never, { keyHandle: pw }), H1],
      ['ObjectChangeAuth(EVE AK under EVE SRK)', marshalCommand(O.ObjectChangeAuth, { objectHandle: AK, parentHandle: SRK, newAuth: Uint8Array.of(1) }, { objectHandle: pw }), H1],
      ['Duplicate(EVE SRK, unwrapped)', marshalCommand(O.Duplicate, { objectHandle: SRK, newParentHandle: TPM_RH.NULL, encryptionKeyIn: empty, symmetricAlg: SYM_NULL }, { objectHandle: pw }), H1],
      ['Import(under EVE SRK)', marshalCommand(O.Import, { parentHandle: SRK, encryptionKey: empty, objectPublic: pub, duplicate: Uint8Array.of(0, 1), inSymSeed: empty, symmetricAlg: SYM_NULL }, { parentHandle: pw }), H1],
      ['CreateLoaded(owner: a primary)', marshalCommand(O.CreateLoaded, { parentHandle: TPM_RH.OWNER, inSensitive: { userAuth: empty, data: empty }, inPublic: Uint8Array.of(0, 8) } as never, { parentHandle: pw }), TPM_RC.HIERARCHY + 0x100],
      ['CreateLoaded(under EVE SRK)', marshalCommand(O.CreateLoaded, { parentHandle: SRK, inSensitive: { userAuth: empty, data: empty }, inPublic: Uint8Array.of(0, 8) } as never, { parentHandle: pw }), H1],
      ['CertifyCreation(signed by EVE AK)', marshalCommand(O.CertifyCreation, { signHandle: AK, objectHandle: SRK, qualifyingData: empty, creationHash: new Uint8Array(32), inScheme: NULL_SCHEME, creationTicket: { tag: TPM_ST.CREATION, hierarchy: TPM_RH.OWNER, digest: new Uint8Array(32) } } as never, { signHandle: pw }), H1],
      ['NV_Increment(EVE NV)', marshalCommand(N.NV_Increment, { authHandle: TPM_RH.OWNER, nvIndex: eveNv }, { authHandle: pw }), H2],
      ['NV_Extend(EVE NV)', marshalCommand(N.NV_Extend, { authHandle: TPM_RH.OWNER, nvIndex: eveNv, data: Uint8Array.of(1) }, { authHandle: pw }), H2],
      ['NV_SetBits(EVE NV)', marshalCommand(N.NV_SetBits, { authHandle: TPM_RH.OWNER, nvIndex: eveNv, bits: 1n }, { authHandle: pw }), H2],
      ['NV_WriteLock(EVE NV)', marshalCommand(N.NV_WriteLock, { authHandle: TPM_RH.OWNER, nvIndex: eveNv }, { authHandle: pw }), H2],
      ['NV_ReadLock(EVE NV)', marshalCommand(N.NV_ReadLock, { authHandle: eveNv, nvIndex: eveNv }, { authHandle: pw }), H1],
      ['NV_ChangeAuth(EVE NV)', marshalCommand(N.NV_ChangeAuth, { nvIndex: eveNv, newAuth: Uint8Array.of(1) }, { nvIndex: pw }), H1],
      ['NV_Certify(EVE AK signs EVE NV)', marshalCommand(N.NV_Certify, { signHandle: AK, authHandle: TPM_RH.OWNER, nvIndex: eveNv, qualifyingData: empty, inScheme: NULL_SCHEME, size: 8, offset: 0 }, { signHandle: pw, authHandle: pw }), H1],
      ['PolicyNV(EVE NV)', marshalCommand(P.PolicyNV, { authHandle: TPM_RH.OWNER, nvIndex: eveNv, policySession: session, operandB: Uint8Array.of(1), offset: 0, operation: 0 }, { authHandle: pw }), H2],
      ['PolicySigned(EVE AK)', marshalCommand(P.PolicySigned, { authObject: AK, policySession: session, nonceTPM: empty, cpHashA: empty, policyRef: empty, expiration: 0, auth: { sigAlg: TPM_ALG.NULL, signature: null } } as never), H1],
      ['PolicySigned(a session as authObject)', marshalCommand(P.PolicySigned, { authObject: session, policySession: session, nonceTPM: empty, cpHashA: empty, policyRef: empty, expiration: -1, auth: { sigAlg: TPM_ALG.NULL, signature: null } } as never), TPM_RC.VALUE + 0x100],
      ['PolicyAuthorize(platform ticket)', marshalCommand(P.PolicyAuthorize, { policySession: session, approvedPolicy: new Uint8Array(32), policyRef: empty, keySign: new Uint8Array(34), checkTicket: { tag: TPM_ST.VERIFIED, hierarchy: TPM_RH.PLATFORM, digest: new Uint8Array(32) } } as never), TPM_RC.TICKET + 0x40 + 0x400],
      ['PolicyPCR(a session not the app’s)', marshalCommand(P.PolicyPCR, { policySession: session + 1, pcrDigest: empty, pcrs: [] }), TPM_RC.REFERENCE_H0],
      ['PolicyRestart(a session not the app’s)', marshalCommand(P.PolicyRestart, { sessionHandle: 0x02000000 }), TPM_RC.REFERENCE_H0],
      ['PolicyTicket', Uint8Array.from([0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x72, 0x03, 0, 0, 0]), TPM_RC.COMMAND_CODE],
    ];
    for (const [name, bytes, want] of corpus) expect(rcOf(await c.send(bytes)), name).toBe(want);
    c.close();
    await rawSettled(env);
    expect(await env.onTpm((t) => eveSnapshot(t, eveNv))).toEqual(before);
  });
});
