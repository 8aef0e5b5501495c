/**
 * Crypto-erase of an app's general keys (issue 12) through the real service on swtpm: a copy of
 * a key's blob file, put back after `tenant remove --purge`, can never be loaded again — not
 * without a parent, not under the record's new parent — and the service never signs with it.
 * Also: another app's parent cannot load the child; `tenant remove` without --purge keeps the
 * parent; the purge with the service stopped (the admin path) destroys the parent too.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { TPM_RC, TpmError, generalKeyFromBlobs, loadGeneralKey, withAppParent, type KeyBlobs } from '../../src/tpm/index.js';
import { PARENTS_DIR, parentFileName } from '../../src/service/keys/app-parents.js';
import { listTenants, removeTenant } from '../../src/service/admin/admin.js';
import { openCore } from '../../src/service/core.js';
import { createLogger } from '../../src/service/logger.js';
import { filePurgeRequest, purgeRecord, takePurgeResult } from '../../src/service/tenants/purge.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { eventually, failure, startEnv, type TestEnv } from './env.js';

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('crypto-erase of general keys', () => {
  let env: TestEnv;
  const log = createLogger('silent');

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'app1' }, { id: 'app2' }] });
  });
  afterAll(async () => {
    await env?.stop();
  });

  const parentPath = (record: string): string => join(env.stateDir, PARENTS_DIR, parentFileName(record));
  const blobPath = (handle: string): string => join(env.stateDir, 'keys', `${handle}.json`);
  const registryPath = (): string => join(env.stateDir, 'registry.json');
  const readBlobs = async (path: string): Promise<KeyBlobs> => {
    const j = JSON.parse(await readFile(path, 'utf8')) as { public: string; private: string };
    return { public: b64(j.public), private: b64(j.private) };
  };

  /** Configures tenant `id` again (a legacy record: the same record as before) with a new secret. */
  async function addBack(id: string): Promise<void> {
    const file = JSON.parse(await readFile(env.tenantsFile, 'utf8')) as { tenants: unknown[] };
    env.secrets[id] = generateSecret();
    file.tenants.push({ id, maxKeys: 8, secretHash: hashSecret(env.secrets[id]!) });
    await writeFile(env.tenantsFile, JSON.stringify(file), { mode: 0o600 });
    await env.service.reload();
  }

  it("another app's parent cannot load an app's key; a copy put back after the purge never loads again", async () => {
    const app1 = env.client('app1');
    const key = await app1.createKey({ type: 'ecc', kind: 'general' });
    await app1.sign(key.handle, { message: Buffer.from('before') });
    await env.client('app2').createKey({ type: 'rsa', kind: 'general', usage: 'decrypt' });
    const rec1 = 'legacy:app1';
    const rec2 = 'legacy:app2';
    expect(existsSync(parentPath(rec1)) && existsSync(parentPath(rec2))).toBe(true);

    // Under app2's parent, app1's child blob is refused by the TPM: its protection is the parent's seed.
    const child = generalKeyFromBlobs(await readBlobs(blobPath(key.handle)));
    const parent2 = await readBlobs(parentPath(rec2));
    const crossed = await env.onTpm((tpm) => withAppParent(tpm, parent2, (p) => loadGeneralKey(tpm, p, child))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(crossed).toBeInstanceOf(TpmError);
    expect((crossed as TpmError).is(TPM_RC.INTEGRITY)).toBe(true);

    // The copies a backup would hold.
    const blobCopy = await readFile(blobPath(key.handle), 'utf8');
    const entryCopy = (JSON.parse(await readFile(registryPath(), 'utf8')) as { keys: Array<{ handle: string }> }).keys.find((k) => k.handle === key.handle)!;

    // `tenant remove` without --purge keeps the keys and the parent (orphans of the record).
    const kept = await removeTenant({ tenantsFile: env.tenantsFile, id: 'app1', purge: false, config: env.config, log });
    expect(kept).toMatchObject({ record: rec1, purged: 0, remaining: 1 });
    await env.service.reload();
    expect(existsSync(parentPath(rec1))).toBe(true);

    // The purge, carried out by the running service (what `tenant remove --purge` asks of it).
    const id = await filePurgeRequest(env.stateDir, rec1, 'app1');
    await env.service.reload();
    expect(await takePurgeResult(env.stateDir, id)).toMatchObject({ purged: 1, remaining: 0 });
    expect(existsSync(parentPath(rec1))).toBe(false);
    expect(existsSync(blobPath(key.handle))).toBe(false);
    expect(env.logs.some((l) => l.event === 'audit' && l.op === 'purge' && /parent key/.test(String(l.msg)))).toBe(true);

    // Put the copies back, restart, configure the same record again.
    await env.stopService();
    await writeFile(blobPath(key.handle), blobCopy, { mode: 0o600 });
    const reg = JSON.parse(await readFile(registryPath(), 'utf8')) as { version: number; keys: unknown[] };
    reg.keys.push(entryCopy);
    await writeFile(registryPath(), JSON.stringify(reg), { mode: 0o600 });
    await env.restartService();
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM recovery');
    expect(env.logs.some((l) => l.msg === "a registered general key's app parent is gone; it cannot be loaded")).toBe(true);
    await addBack('app1');
    const again = env.client('app1');
    expect((await again.listKeys()).map((k) => k.handle)).toEqual([key.handle]);

    // No parent: refused before the TPM sees a command.
    let from = env.commands.length;
    const noParent = await failure(again.sign(key.handle, { message: Buffer.from('after') }));
    expect(noParent).toMatchObject({ status: 409 });
    expect(noParent.message).toMatch(/parent key is gone/);
    // (The supervisor's own background commands may run meanwhile: no key of ours was touched.)
    expect(env.commands.slice(from).filter((c) => ['CreatePrimary', 'Load', 'Sign'].includes(c))).toEqual([]);

    // The record's next general key makes it a new parent: the old child does not load under it either.
    await again.createKey({ type: 'ecc', kind: 'general' });
    expect(existsSync(parentPath(rec1))).toBe(true);
    from = env.commands.length;
    const newParent = await failure(again.sign(key.handle, { message: Buffer.from('after') }));
    expect(newParent).toMatchObject({ status: 409 });
    expect(newParent.tpmRc).toBe('0x000001df'); // TPM_RC_INTEGRITY, Load's parameter 1 (inPrivate)
    const sent = env.commands.slice(from);
    expect(sent).toContain('Load');
    expect(sent).not.toContain('Sign');
    await again.deleteKey(key.handle);
  }, 90_000);

  it('a purge with the service stopped (the admin path) destroys the parent too', async () => {
    const rec2 = 'legacy:app2';
    expect(existsSync(parentPath(rec2))).toBe(true);
    await env.stopService();
    await removeTenant({ tenantsFile: env.tenantsFile, id: 'app2', purge: false, config: env.config, log });
    // What purgeRecordKeys does with the state unlocked, on this test's TPM connection.
    const core = await openCore(env.config, log, env.tpm);
    try {
      expect(await purgeRecord(core.keys, rec2, 'app2', log)).toMatchObject({ purged: 1, remaining: 0 });
    } finally {
      await core.close();
    }
    expect(existsSync(parentPath(rec2))).toBe(false);
    await env.restartService();
  }, 60_000);

  it('a record left with only its parent is listed as an orphan and purged: the parent goes', async () => {
    const rec1 = 'legacy:app1';
    const app1 = env.client('app1');
    for (const k of await app1.listKeys()) await app1.deleteKey(k.handle);
    expect(existsSync(parentPath(rec1))).toBe(true); // deleting keys one by one keeps the parent
    await removeTenant({ tenantsFile: env.tenantsFile, id: 'app1', purge: false, config: env.config, log });
    await env.service.reload();
    const listed = await listTenants(env.tenantsFile, env.stateDir);
    expect(listed.orphans).toEqual([{ record: rec1, tenant: rec1, keys: [], appParent: true }]);
    await env.stopService();
    const core = await openCore(env.config, log, env.tpm);
    try {
      expect(await purgeRecord(core.keys, rec1, 'app1', log)).toMatchObject({ purged: 0, remaining: 0 });
    } finally {
      await core.close();
    }
    expect(existsSync(parentPath(rec1))).toBe(false);
    expect((await listTenants(env.tenantsFile, env.stateDir)).orphans).toEqual([]);
    await env.restartService();
  }, 60_000);
});
