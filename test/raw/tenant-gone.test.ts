/**
 * A tenant removed from the tenants file: its open raw connections end at the reload, without
 * a command of its own (RawChannel.tenantsChanged), and their context is flushed as on any
 * close; another tenant's connection goes on.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, unmarshalResponse } from '../../src/tpm/command.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { openRaw, rawSettled, rcOf, type RawConn } from './helpers.js';

const getRandom = marshalCommand(C.GetRandom, { bytesRequested: 8 });
const startSession = marshalCommand(C.StartAuthSession, {
  tpmKey: TPM_RH.NULL,
  bind: TPM_RH.NULL,
  nonceCaller: new Uint8Array(16),
  encryptedSalt: new Uint8Array(0),
  sessionType: 0,
  symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
  authHash: TPM_ALG.SHA256,
} as never);

describe.skipIf(skipUnlessCI(!swtpmAvailable(), 'swtpm'))('a removed tenant’s raw connection', () => {
  let env: TestEnv;
  const open: RawConn[] = [];

  beforeAll(async () => {
    env = await startEnv();
  }, 120_000);
  afterAll(async () => {
    for (const c of open) c.close();
    await env?.stop();
  });

  it('ends at the reload, with no command sent; its session is flushed; bob’s connection goes on', async () => {
    const alice = await openRaw(env.unix, env.secrets.alice);
    const bob = await openRaw(env.unix, env.secrets.bob);
    open.push(alice, bob);
    const s = await alice.send(startSession);
    expect(rcOf(s)).toBe(0);
    const session = unmarshalResponse(C.StartAuthSession, s).output.sessionHandle as number;
    expect(rcOf(await bob.send(getRandom))).toBe(0);

    const before = await readFile(env.tenantsFile, 'utf8');
    const file = JSON.parse(before) as { tenants: Array<{ id: string }> };
    await writeFile(env.tenantsFile, JSON.stringify({ tenants: file.tenants.filter((t) => t.id !== 'alice') }), { mode: 0o600 });
    await env.service.reload();
    // Nothing sent on alice's connection since: the service closes it, and sends nothing.
    expect((await alice.closed()).length).toBe(0);
    expect(env.logs.filter((l) => l.event === 'raw-tenant-gone').map((l) => l.tenant)).toEqual(['alice']);
    expect(rcOf(await bob.send(getRandom))).toBe(0);

    // As on any close: alice's session is gone from the chip.
    await writeFile(env.tenantsFile, before, { mode: 0o600 });
    await env.service.reload();
    bob.close();
    await rawSettled(env);
    const sessions = await env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x02000000, propertyCount: 64 })).capabilityData);
    expect((sessions as { data: number[] }).data).not.toContain(session);
    const saved = await env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x03000000, propertyCount: 64 })).capabilityData);
    expect((saved as { data: number[] }).data).not.toContain(session);
    // alice configured again: a new connection works.
    const again = await openRaw(env.unix, env.secrets.alice);
    open.push(again);
    expect(rcOf(await again.send(getRandom))).toBe(0);
  });
});
