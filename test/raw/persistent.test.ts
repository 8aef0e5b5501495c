/**
 * An app's virtual persistent handles through stock tpm2-tools (cmd TCTI → raw channel →
 * swtpm): tpm2_evictcontrol records the object in the service (never chip NV), later runs and a
 * restarted service make it again, other apps do not see it, and EVE's objects stay as they were.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import * as C from '../../src/tpm/commands.js';
import { createTransientEk, type TpmRunner } from '../../src/tpm/index.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { removeTenant } from '../../src/service/admin/admin.js';
import { createLogger } from '../../src/service/logger.js';
import { filePurgeRequest, purgeRecord, takePurgeResult } from '../../src/service/tenants/purge.js';
import { openCore } from '../../src/service/core.js';
import { purgeRawState } from '../../src/service/raw/purge-state.js';
import { bundleTcti, stockToolsThere, tctiEnv } from './helpers.js';

/** An app's raw state file, `raw/<sha256(record)>.json` (not the service's own kept-sessions.json). */
const isAppState = (f: string): boolean => /^[0-9a-f]{64}\.json$/.test(f);

const toolsThere = stockToolsThere();

/** The chip's own persistent handles and NV indices (asked directly, not through the firewall). */
async function chipHandles(tpm: TpmRunner): Promise<{ persistent: unknown; nv: unknown }> {
  const cap = async (property: number) => (await tpm.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property, propertyCount: 254 })).capabilityData;
  return { persistent: await cap(0x81000000), nv: await cap(0x01000000) };
}

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !toolsThere, 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('virtual persistent handles (tpm2_evictcontrol)', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  let chipBefore: { persistent: unknown; nv: unknown };
  let eveName: Uint8Array;
  const envFor = (tenant: string): NodeJS.ProcessEnv => tctiEnv(tcti, env.unix, env.secrets[tenant]);
  const as = (tenant: string, name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, { cwd: work.dir, env: envFor(tenant), timeoutMs: 60_000 });
  const fails = (tenant: string, name: string, ...args: string[]): Promise<RunResult> => run(name, args, { cwd: work.dir, env: envFor(tenant), timeoutMs: 60_000 });
  const persistentList = async (tenant: string): Promise<string[]> =>
    (await as(tenant, 'tpm2_getcap', 'handles-persistent')).stdout
      .split('\n')
      .map((l) => l.replace(/^- /, '').trim())
      .filter(Boolean);
  const nameOf = (r: RunResult): string | undefined => /^name: ([0-9a-f]+)$/m.exec(r.stdout)?.[1];

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-persist-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'msg.txt'), 'persisted keys sign this\n');
    // EVE's planted object at 0x81000001 (its EK's handle), made on the chip as EVE would.
    eveName = await env.onTpm(async (tpm) => {
      const p = { objectHandle: (await createTransientEk(tpm, 'ecc')).handle };
      await tpm.run(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: p.objectHandle, persistentHandle: 0x81000001 });
      await tpm.run(C.FlushContext, { flushHandle: p.objectHandle });
      return (await tpm.run(C.ReadPublic, { objectHandle: 0x81000001 })).name;
    });
    chipBefore = await env.onTpm(chipHandles);
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('createprimary → evictcontrol 0x81000100 → readpublic in a new process and after a restart', async () => {
    await as('alice', 'tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'p.ctx');
    const name = nameOf(await as('alice', 'tpm2_readpublic', '-c', 'p.ctx'));
    expect(name).toMatch(/^[0-9a-f]{68}$/);
    const ev = await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p.ctx', '0x81000100');
    expect(ev.stdout).toMatch(/persistent-handle: 0x81000100/);
    expect(ev.stdout).toMatch(/action: persisted/);
    expect(nameOf(await as('alice', 'tpm2_readpublic', '-c', '0x81000100'))).toBe(name);
    // Recorded in the state dir, not on the chip.
    expect(await env.onTpm(chipHandles)).toEqual(chipBefore);
    await env.restartService();
    expect(nameOf(await as('alice', 'tpm2_readpublic', '-c', '0x81000100'))).toBe(name);
    expect(await persistentList('alice')).toEqual(['0x81000100']);
  });

  it('a persisted child key signs; the list shows exactly the app’s handles, sorted', async () => {
    await as('alice', 'tpm2_create', '-C', '0x81000100', '-G', 'ecc', '-u', 'k.pub', '-r', 'k.priv');
    await as('alice', 'tpm2_load', '-C', '0x81000100', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k.ctx');
    await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'k.ctx', '0x81000101');
    await as('alice', 'tpm2_sign', '-c', '0x81000101', '-g', 'sha256', '-o', 'sig.bin', 'msg.txt');
    await as('alice', 'tpm2_verifysignature', '-c', '0x81000101', '-g', 'sha256', '-m', 'msg.txt', '-s', 'sig.bin');
    expect(await persistentList('alice')).toEqual(['0x81000100', '0x81000101']);
    expect(await env.onTpm(chipHandles)).toEqual(chipBefore);
  });

  it('another app neither sees nor uses them; EVE’s handles are nobody’s', async () => {
    expect(await persistentList('bob')).toEqual([]);
    const stolen = await fails('bob', 'tpm2_readpublic', '-c', '0x81000100');
    expect(stolen.code).not.toBe(0);
    const sign = await fails('bob', 'tpm2_sign', '-c', '0x81000101', '-g', 'sha256', '-o', 'bob-sig.bin', 'msg.txt');
    expect(sign.code).not.toBe(0);
    // bob's own 0x81000100 is his own object.
    await as('bob', 'tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'bob.ctx');
    await as('bob', 'tpm2_evictcontrol', '-C', 'o', '-c', 'bob.ctx', '0x81000100');
    const bobs = nameOf(await as('bob', 'tpm2_readpublic', '-c', '0x81000100'));
    const alices = nameOf(await as('alice', 'tpm2_readpublic', '-c', '0x81000100'));
    expect(bobs).toMatch(/^[0-9a-f]+$/);
    expect(bobs).not.toBe(alices);
    // EVE's 0x81000001: not readable, not a target. (p.ctx was saved before the restart: made again.)
    expect((await fails('alice', 'tpm2_readpublic', '-c', '0x81000001')).code).not.toBe(0);
    await as('alice', 'tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'p.ctx');
    const onEve = await fails('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p.ctx', '0x81000001');
    expect(onEve.code).not.toBe(0);
    expect(onEve.stderr).toMatch(/0x1[0-9a-f]d|RANGE|range/i);
    await as('bob', 'tpm2_evictcontrol', '-C', 'o', '-c', '0x81000100');
  });

  it('quota exhausted: TPM_RC_NV_SPACE; evict → gone; a restart keeps each app’s NV range', async () => {
    // alice holds 2 of 8.
    for (let i = 0; i < 6; i++) await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p.ctx', `0x8100020${i}`);
    const full = await fails('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p.ctx', '0x81000300');
    expect(full.code).not.toBe(0);
    expect(full.stderr).toMatch(/0x14b|NV_SPACE|space/i);
    const taken = await fails('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p.ctx', '0x81000100');
    expect(taken.code).not.toBe(0);
    for (let i = 0; i < 6; i++) await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', `0x8100020${i}`);
    const ev = await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', '0x81000101');
    expect(ev.stdout).toMatch(/action: evicted/);
    expect(await persistentList('alice')).toEqual(['0x81000100']);
    expect((await fails('alice', 'tpm2_readpublic', '-c', '0x81000101')).code).not.toBe(0);
    const rangeOf = (tenant: string) => env.logs.filter((l) => l.event === 'raw-open' && String(l.record).endsWith(tenant)).map((l) => l.nv);
    const before = [rangeOf('alice').at(-1), rangeOf('bob').at(-1)];
    await env.restartService();
    // bob connects first this time: the placement comes from the state files, not the order.
    await as('bob', 'tpm2_getrandom', '4');
    await as('alice', 'tpm2_getrandom', '4');
    expect([rangeOf('alice').at(-1), rangeOf('bob').at(-1)]).toEqual(before);
    const files = await readdir(join(env.stateDir, 'raw'));
    expect(files.filter(isAppState)).toHaveLength(2);
    const state = JSON.parse(await readFile(join(env.stateDir, 'raw', files.find(isAppState)!), 'utf8')) as { nvSlot: number };
    expect(typeof state.nvSlot).toBe('number');
  });

  it('tpm2_evictcontrol without a handle takes the first free one the app sees; EVE’s next one is refused', async () => {
    await as('alice', 'tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'p3.ctx');
    const first = await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p3.ctx');
    expect(first.stdout).toMatch(/persistent-handle: 0x81000000/);
    // The next free one after 0x81000000 is EVE's 0x81000001: refused (docs/FIREWALL.md: name a handle).
    const second = await fails('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', 'p3.ctx');
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/0x1CD/i);
    expect(await persistentList('alice')).toEqual(['0x81000000', '0x81000100']);
    await as('alice', 'tpm2_evictcontrol', '-C', 'o', '-c', '0x81000000');
  });

  it('the chip is unchanged: no persistent handle or NV index of the apps, EVE’s object as it was', async () => {
    expect(await env.onTpm(chipHandles)).toEqual(chipBefore);
    expect(await env.onTpm(async (tpm) => (await tpm.run(C.ReadPublic, { objectHandle: 0x81000001 })).name)).toEqual(eveName);
  });

  it('purging a removed tenant’s record undefines its NV indices and removes its raw state', async () => {
    const range = String(env.logs.filter((l) => l.event === 'raw-open' && l.record === 'legacy:bob').at(-1)?.nv);
    const index = range.split('–')[0]!;
    await as('bob', 'tpm2_nvdefine', index, '-C', 'o', '-s', '8', '-a', 'ownerread|ownerwrite');
    await as('bob', 'tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'bob2.ctx');
    await as('bob', 'tpm2_evictcontrol', '-C', 'o', '-c', 'bob2.ctx', '0x81000123');
    const nvOnChip = async () => ((await env.onTpm(chipHandles)).nv as { data: number[] }).data;
    expect(await nvOnChip()).toContain(Number(index));
    // A session bob saved himself outlives his connection (kept-sessions.ts) until the purge.
    const savedSessions = async (): Promise<number[]> =>
      ((await env.onTpm(async (tpm) => (await tpm.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x03000000, propertyCount: 254 })).capabilityData)) as { data: number[] }).data;
    const sessionsBefore = await savedSessions();
    await as('bob', 'tpm2_startauthsession', '-S', 'bob-session.ctx');
    expect((await savedSessions()).length).toBe(sessionsBefore.length + 1);
    const log = createLogger('silent');
    await removeTenant({ tenantsFile: env.tenantsFile, id: 'bob', purge: false, config: env.config, log });
    await env.service.reload();
    const id = await filePurgeRequest(env.stateDir, 'legacy:bob', 'bob');
    await env.service.reload();
    expect(await takePurgeResult(env.stateDir, id)).toMatchObject({ record: 'legacy:bob' });
    expect(env.logs.find((l) => l.event === 'raw-purged')).toMatchObject({ record: 'legacy:bob', nvIndices: 1, sessions: 1 });
    expect(await nvOnChip()).not.toContain(Number(index));
    expect(await savedSessions()).toEqual(sessionsBefore);
    expect((await readdir(join(env.stateDir, 'raw'))).filter(isAppState)).toHaveLength(1); // alice's
    expect(await persistentList('alice')).toEqual(['0x81000100']);
  });

  it('a purge with the service stopped (the admin path) undefines the NV indices and removes the raw state too', async () => {
    const range = String(env.logs.filter((l) => l.event === 'raw-open' && l.record === 'legacy:alice').at(-1)?.nv);
    const index = range.split('–')[0]!;
    await as('alice', 'tpm2_nvdefine', index, '-C', 'o', '-s', '8', '-a', 'ownerread|ownerwrite');
    const nvOnChip = async () => ((await env.onTpm(chipHandles)).nv as { data: number[] }).data;
    expect(await nvOnChip()).toContain(Number(index));
    const log = createLogger('silent');
    await env.stopService();
    await removeTenant({ tenantsFile: env.tenantsFile, id: 'alice', purge: false, config: env.config, log });
    // What the admin command's purge does with the state unlocked, on this test's TPM connection
    // (swtpm serves one connection at a time).
    const core = await openCore(env.config, log, env.tpm);
    try {
      await purgeRecord(core.keys, 'legacy:alice', 'alice', log);
      expect(await purgeRawState(env.stateDir, core.queue, 'legacy:alice', log)).toBe(1);
    } finally {
      await core.close();
    }
    await env.restartService();
    expect(await nvOnChip()).not.toContain(Number(index));
    expect((await readdir(join(env.stateDir, 'raw'))).filter(isAppState)).toEqual([]);
  });
});
