/**
 * The DA total across apps against a real service on swtpm (attack 5): the chip's figures are
 * read when the raw channel starts (the test sets them first with TPM2_DictionaryAttackParameters
 * and the lockout hierarchy's empty authorization, straight on the chip, which the firewall
 * refuses to apps); maxTries 8 keeps 2 for EVE, so two apps failing 3 times each stop every
 * app's DA-counted authorization with the firewall's TPM_RC_LOCKOUT, and the chip's counter
 * stays at 6, short of its lockout. Counts and order only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import { TPM_RC, TpmError } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { Tpm, passwordAuth } from '../../src/tpm/index.js';
import { NULL_HASHCHECK } from '../../src/tpm/ops/general-sign.js';
import { akEccTemplate } from '../../src/tpm/keys/templates.js';
import { RawClient } from '../../src/service/client/raw-client.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { eventually, startEnv, type TestEnv } from '../service/env.js';
import { rawSettled } from './helpers.js';
import { DictionaryAttackParameters } from '../helpers/hierarchy.js';

/** A signing key without noDA: its authorization failures count on the chip. */
const SIGNING = { ...akEccTemplate(), objectAttributes: akEccTemplate().objectAttributes - 0x10000 };
const RIGHT = new TextEncoder().encode('right');
const WRONG = new TextEncoder().encode('wrong');
const AUTH_FAIL_S1 = TPM_RC.AUTH_FAIL + 0x800 + 0x100;

describe.skipIf(skipUnlessCI(!swtpmAvailable(), 'swtpm'))('DA total across apps (swtpm, real service)', () => {
  let env: TestEnv;
  const clients: RawClient[] = [];

  /** The chip's TPM_PT_LOCKOUT_COUNTER and TPM_PT_PERMANENT's inLockout, read outside the firewall. */
  const chipDa = () =>
    env.onTpm(async (t) => {
      const r = await t.run(C.GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property: 0x200, propertyCount: 16 });
      const props = new Map((r.capabilityData as { data: Array<{ property: number; value: number }> }).data.map((p) => [p.property, p.value]));
      return { counter: props.get(0x20e), inLockout: Math.floor(props.get(0x200)! / 0x200) % 2 === 1 };
    });
  /** An app over its own raw connection, with a DA-protected signing key (password "right"). */
  const app = async (tenant: string) => {
    const client = await RawClient.open(env.unix, env.secrets[tenant]);
    clients.push(client);
    const tpm = new Tpm({ description: `raw:${tenant}`, send: (f) => client.transact(f), close: () => Promise.resolve(client.close()) });
    const { objectHandle } = await tpm.run(C.CreatePrimary, {
      primaryHandle: TPM_RH.NULL,
      inSensitive: { userAuth: RIGHT, data: new Uint8Array(0) },
      inPublic: SIGNING as never,
      outsideInfo: new Uint8Array(0),
      creationPCR: [],
    });
    /** The response code of a Sign with `password`. */
    const sign = (password: Uint8Array): Promise<number> =>
      tpm
        .run(C.Sign, { keyHandle: objectHandle, digest: new Uint8Array(32).fill(1), inScheme: { scheme: 0x10, details: null } as never, validation: { ...NULL_HASHCHECK } }, { auth: { keyHandle: passwordAuth(password) } })
        .then(
          () => TPM_RC.SUCCESS,
          (e: unknown) => (e as TpmError).rc,
        );
    return { sign };
  };

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }, { id: 'bob' }, { id: 'carol' }] });
    await env.onTpm((t) => t.run(DictionaryAttackParameters, { lockHandle: TPM_RH.LOCKOUT, newMaxTries: 8, newRecoveryTime: 1000, lockoutRecovery: 1000 }));
    // The figures are read when the raw channel starts: start it again.
    await env.restartService();
    await eventually(() => env.logs.some((l) => l.event === 'raw-da-figures' && l.maxAuthFail === 8), 30_000, 'the DA figures read');
  }, 180_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await env?.stop();
  });

  it('reads the chip’s figures at start: swtpm’s own (3 tries), then the test’s (8 tries, 2 kept for EVE)', () => {
    const figures = env.logs.filter((l) => l.event === 'raw-da-figures');
    expect(figures.map((l) => [l.maxAuthFail, l.lockoutIntervalS, l.counter, l.reserve, l.appsLimit])).toEqual([
      [3, 1000, 0, 2, 1],
      [8, 1000, 0, 2, 6],
    ]);
  });

  it('two apps fail 3 times each: every app’s next authorization gets LOCKOUT from the firewall; the chip’s counter stays at 6 of 8', async () => {
    const [alice, bob, carol] = [await app('alice'), await app('bob'), await app('carol')];
    expect(await carol.sign(RIGHT)).toBe(TPM_RC.SUCCESS);
    for (const a of [alice, bob]) for (let i = 0; i < 3; i++) expect(await a.sign(WRONG)).toBe(AUTH_FAIL_S1);
    expect(await chipDa()).toEqual({ counter: 6, inLockout: false });
    // No app is at its own limit (4), all are stopped by the total: the chip never sees these.
    for (const a of [carol, alice, bob]) expect(await a.sign(RIGHT)).toBe(TPM_RC.LOCKOUT);
    expect(await carol.sign(WRONG)).toBe(TPM_RC.LOCKOUT);
    expect(await chipDa()).toEqual({ counter: 6, inLockout: false });
    // EVE's reserve is left: the chip still answers a DA-protected authorization itself.
    const direct = await env.onTpm(async (t) => {
      const { objectHandle } = await t.run(C.CreatePrimary, { primaryHandle: TPM_RH.NULL, inSensitive: { userAuth: RIGHT, data: new Uint8Array(0) }, inPublic: SIGNING as never, outsideInfo: new Uint8Array(0), creationPCR: [] });
      try {
        await t.run(C.Sign, { keyHandle: objectHandle, digest: new Uint8Array(32), inScheme: { scheme: 0x10, details: null } as never, validation: { ...NULL_HASHCHECK } }, { auth: { keyHandle: passwordAuth(RIGHT) } });
        return TPM_RC.SUCCESS;
      } finally {
        await t.run(C.FlushContext, { flushHandle: objectHandle });
      }
    });
    expect(direct).toBe(TPM_RC.SUCCESS);
    for (const c of clients.splice(0)) c.close();
    await rawSettled(env);
  });
});
