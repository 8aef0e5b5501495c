/**
 * Keys belong to a tenant record (the `uid` that `tenant add` gives), not to a name: a tenant
 * removed without --purge leaves its keys as orphans of its record, listed and purgeable, and
 * a new tenant with the same name never sees them. Files written before records existed (no
 * uid, no owner) keep working: such a tenant is the legacy record `legacy:<id>`.
 */
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addTenant, listTenants, removeTenant } from '../../src/service/admin/admin.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { createLogger } from '../../src/service/logger.js';
import { generateSecret, hashSecret, parseTenants } from '../../src/service/tenants/tenants.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { blobFiles, readRegistry, runBinAsync, secretOf } from './admin-helpers.js';
import { buildServiceBin, killAll, spawnService, waitHealthy } from './child.js';
import { eventually, startEnv } from './env.js';

interface Listing {
  tenants: Array<{ id: string; record: string; keys: Array<{ handle: string }> }>;
  orphans: Array<{ record: string; tenant: string; keys: Array<{ handle: string }> }>;
}

describe('tenants file', () => {
  it('refuses one secret for two tenants', () => {
    const h = hashSecret(generateSecret());
    expect(() => parseTenants({ tenants: [{ id: 'a', secretHash: h }, { id: 'b', secretHash: h }] })).toThrow(/tenants\[1\].*same secret as tenants\[0\]/);
    expect(() => parseTenants({ tenants: [{ id: 'a', uid: '00112233445566ff', cid: 5 }, { id: 'b', uid: '00112233445566ff', cid: 6 }] })).toThrow(/uid/);
    expect(() => parseTenants({ tenants: [{ id: 'a', uid: 'legacy:a', cid: 5 }] })).toThrow(/uid/);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('keys owned by a tenant record', () => {
  let bin: { bin: string; cleanup: () => void };
  let swtpm: SwtpmInstance;
  let dir: string;
  beforeAll(async () => {
    bin = buildServiceBin();
    swtpm = await startSwtpm();
    dir = await mkdtemp(join(tmpdir(), 'svc-records-'));
  });
  afterAll(async () => {
    await killAll();
    await swtpm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    bin?.cleanup();
  });

  it('a re-used tenant id does not inherit the old tenant’s keys; orphans are listed and purged by record', async () => {
    const tenants = join(dir, 'tenants.json');
    const stateDir = join(dir, 'state');
    const sock = join(dir, 'r.sock');
    const admin = (...args: string[]) => runBinAsync(bin.bin, ['tenant', ...args, '--tenants', tenants]);
    const state = ['--state-dir', stateDir];
    const uidOf = (id: string): string => (JSON.parse(readFileSync(tenants, 'utf8')) as { tenants: Array<{ id: string; uid: string }> }).tenants.find((t) => t.id === id)!.uid;
    const list = async (): Promise<Listing> => JSON.parse((await admin('list', ...state, '--json')).stdout) as Listing;

    const oldZed = new ServiceClient({ address: `unix:${sock}`, secret: secretOf((await admin('add', '--id', 'zed')).stdout) });
    const other = new ServiceClient({ address: `unix:${sock}`, secret: secretOf((await admin('add', '--id', 'other')).stdout) });
    const svc = spawnService(bin.bin, ['--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', `unix:${sock}`, '--tenants', tenants, ...state, '--log-level', 'warn']);
    await waitHealthy(svc, `unix:${sock}`);
    const oldKey = (await oldZed.createKey({ type: 'ecc' })).handle;
    const otherKey = (await other.createKey({ type: 'ecc' })).handle;

    const removed = await admin('remove', '--id', 'zed', ...state);
    expect(removed.status, removed.stderr).toBe(0);
    const re = await admin('add', '--id', 'zed');
    expect(re.status, re.stderr).toBe(0);
    const newZed = new ServiceClient({ address: `unix:${sock}`, secret: secretOf(re.stdout) });
    svc.child.kill('SIGHUP'); // re-read the tenants file now
    await eventually(() => newZed.listKeys().then(() => true, () => false), 10_000, 'the new zed to be known');

    // The weakness: the new zed listed and signed with the old zed's key.
    expect(await newZed.listKeys()).toEqual([]);
    await expect(newZed.sign(oldKey, { message: Buffer.from('x') })).rejects.toMatchObject({ status: 403 });
    await expect(oldZed.listKeys()).rejects.toMatchObject({ status: 401 });

    const oldRecord = JSON.parse(readFileSync(join(stateDir, 'registry.json'), 'utf8')).keys.find((k: { handle: string }) => k.handle === oldKey).owner as string;
    expect(oldRecord).toMatch(/^[0-9a-f]{16}$/);
    expect(removed.stdout).toContain(`orphans of record ${oldRecord}`);
    expect(uidOf('zed')).not.toBe(oldRecord);

    let l = await list();
    expect(l.tenants.map((t) => [t.id, t.record, t.keys.map((k) => k.handle)])).toEqual([
      ['other', uidOf('other'), [otherKey]],
      ['zed', uidOf('zed'), []],
    ]);
    expect(l.orphans).toEqual([expect.objectContaining({ record: oldRecord, tenant: 'zed', keys: [expect.objectContaining({ handle: oldKey })] })]);
    const text = (await admin('list', ...state)).stdout;
    expect(text).toMatch(new RegExp(`ORPHANED record ${oldRecord} \\(was zed\\) keys=1`));
    expect(text).toContain(`tenant purge --record ${oldRecord}`);

    // A new key of the new zed never takes the orphan's handle, and the record of a configured
    // tenant cannot be purged by record.
    const newKey = (await newZed.createKey({ type: 'ecc' })).handle;
    expect(newKey).not.toBe(oldKey);
    const refused = await admin('purge', '--record', uidOf('zed'), ...state);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('belongs to the configured tenant zed');

    const purged = await admin('purge', '--record', oldRecord, ...state);
    expect(purged.status, purged.stderr).toBe(0);
    expect(purged.stdout).toContain('1 key(s) purged');
    expect(readRegistry(stateDir).map((e) => e.owner)).not.toContain(oldRecord);
    expect(blobFiles(stateDir)).toEqual([`${otherKey}.json`, `${newKey}.json`].sort());
    const msg = Buffer.from('still mine');
    const pem = (await newZed.getKey(newKey)).pem;
    expect(verify('sha256', msg, createPublicKey(pem), (await newZed.sign(newKey, { message: msg })).signature)).toBe(true);

    // Only orphans left under a name: `remove --id NAME --purge` purges them.
    expect((await admin('remove', '--id', 'zed', ...state)).status).toBe(0);
    const byName = await admin('remove', '--id', 'zed', '--purge', ...state);
    expect(byName.status, byName.stderr).toBe(0);
    expect(byName.stdout).toContain('1 key(s) purged');
    l = await list();
    expect(l.orphans).toEqual([]);
    expect(l.tenants.map((t) => t.id)).toEqual(['other']);
    expect((await admin('remove', '--id', 'ghost', '--purge', ...state)).status).toBe(2);
    oldZed.close();
    other.close();
    newZed.close();
    svc.child.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  }, 60_000);

  it('keeps files of the previous version working: a tenant without uid is the legacy record of its id', async () => {
    const env = await startEnv({ tenants: [{ id: 'alice' }, { id: 'bob' }] });
    try {
      const a1 = (await env.client('alice').createKey({ type: 'ecc' })).handle;
      const a2 = (await env.client('alice').createKey({ type: 'rsa' })).handle;
      const b1 = (await env.client('bob').createKey({ type: 'ecc' })).handle;
      await env.stopService();
      // As the previous version wrote them: no owner in the registry or in the blob files.
      const regPath = join(env.stateDir, 'registry.json');
      const reg = JSON.parse(readFileSync(regPath, 'utf8')) as { keys: Array<Record<string, unknown>> };
      for (const k of reg.keys) delete k.owner;
      writeFileSync(regPath, JSON.stringify(reg));
      for (const f of blobFiles(env.stateDir)) {
        const p = join(env.stateDir, 'keys', f);
        const j = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
        delete j.owner;
        writeFileSync(p, JSON.stringify(j));
      }
      await env.restartService();
      expect((await env.client('alice').listKeys()).map((k) => k.handle)).toEqual([a1, a2]);
      expect((await env.client('bob').listKeys()).map((k) => k.handle)).toEqual([b1]);
      for (const h of [a1, a2]) await env.client('alice').sign(h, { message: Buffer.from('m') });
      expect(readRegistry(env.stateDir).map((e) => e.owner)).toEqual(['legacy:alice', 'legacy:alice', 'legacy:bob']);

      // Removed without purge, then added again: the new alice is a new record.
      const log = createLogger('silent');
      const r = await removeTenant({ tenantsFile: env.tenantsFile, id: 'alice', purge: false, config: env.config, log });
      expect(r).toMatchObject({ purged: 0, remaining: 2, record: 'legacy:alice' });
      const added = await addTenant({ tenantsFile: env.tenantsFile, id: 'alice' });
      env.secrets.alice = added.secret;
      await env.service.reload();
      expect(await env.client('alice').listKeys()).toEqual([]);
      await expect(env.client('alice').sign(a1, { message: Buffer.from('m') })).rejects.toMatchObject({ status: 403 });
      const l = await listTenants(env.tenantsFile, env.stateDir);
      expect(l.orphans).toEqual([expect.objectContaining({ record: 'legacy:alice', tenant: 'alice', keys: [expect.objectContaining({ handle: a1 }), expect.objectContaining({ handle: a2 })] })]);

      // The record, not the name, owns a key: renaming a tenant in the file keeps its keys.
      const file = JSON.parse(readFileSync(env.tenantsFile, 'utf8')) as { tenants: Array<{ id: string }> };
      file.tenants.find((t) => t.id === 'bob')!.id = 'robert';
      writeFileSync(env.tenantsFile, JSON.stringify(file));
      env.secrets.robert = env.secrets.bob!;
      await env.service.reload();
      expect((await env.client('robert').listKeys()).map((k) => k.handle)).toEqual([]); // legacy record is keyed by the id
      const newAlice = added.tenant.uid!;
      file.tenants.find((t) => t.id === 'alice')!.id = 'alicia';
      writeFileSync(env.tenantsFile, JSON.stringify(file));
      env.secrets.alicia = env.secrets.alice!;
      await env.service.reload();
      const k = (await env.client('alicia').createKey({ type: 'ecc' })).handle;
      expect(readRegistry(env.stateDir).find((e) => e.handle === Number(k))).toMatchObject({ owner: newAlice, tenant: 'alicia' });
    } finally {
      await env.stop();
    }
  }, 60_000);
});
