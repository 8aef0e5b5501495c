/**
 * Never delete what is not proven orphaned. A blob file without a registry entry can only
 * mean a lost registry (create writes the entry first, delete removes the blob first), so:
 * a missing registry.json with blob files stops the service (exit 3, one line naming the
 * files and the command to run), `registry rebuild` restores every key from its blob file,
 * and blob files, unreadable files and TPM objects that no entry owns are reported and kept,
 * and their handles never handed out.
 */
import { createPublicKey, verify } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient } from '../../src/service/client/client.js';
import { listHandles } from '../../src/tpm/index.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { startSwtpm, swtpmAvailable } from '../helpers/swtpm.js';
import { blobFiles, hexHandle, readRegistry, runBinAsync, secretOf } from './admin-helpers.js';
import { buildServiceBin, killAll, spawnService, waitHealthy } from './child.js';
import { startEnv } from './env.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('a lost registry never loses keys', () => {
  let bin: { bin: string; cleanup: () => void };
  let dir: string;
  beforeAll(async () => {
    bin = buildServiceBin();
    dir = await mkdtemp(join(tmpdir(), 'svc-regloss-'));
  });
  afterAll(async () => {
    await killAll();
    if (dir) await rm(dir, { recursive: true, force: true });
    bin?.cleanup();
  });

  for (const mode of ['blobs', 'tpm'] as const) {
    it(`registry.json deleted: start refused, registry rebuild, restart with every key (${mode} store)`, async () => {
      const swtpm = await startSwtpm();
      try {
        const sub = join(dir, mode);
        mkdirSync(sub);
        const tenants = join(sub, 'tenants.json');
        const stateDir = join(sub, 'state');
        const sock = join(sub, 's.sock');
        const address = `unix:${sock}`;
        const serve = ['--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', address, '--tenants', tenants, '--state-dir', stateDir, '--key-store', mode, '--log-level', 'warn'];
        const a = new ServiceClient({ address, secret: secretOf((await runBinAsync(bin.bin, ['tenant', 'add', '--id', 'a', '--tenants', tenants])).stdout) });
        // b as the previous version wrote it: no uid (legacy record).
        const bSecret = generateSecret();
        const file = JSON.parse(readFileSync(tenants, 'utf8')) as { tenants: unknown[] };
        file.tenants.push({ id: 'b', secretHash: hashSecret(bSecret), maxKeys: 8 });
        writeFileSync(tenants, JSON.stringify(file));
        const b = new ServiceClient({ address, secret: bSecret });

        let svc = spawnService(bin.bin, serve);
        await waitHealthy(svc, address);
        const aKeys = [(await a.createKey({ type: 'ecc' })).handle, (await a.createKey({ type: 'rsa', hashAlg: 'sha384' })).handle];
        const bKeys = [(await b.createKey({ type: 'ecc', hashAlg: 'sha512' })).handle];
        const before = readRegistry(stateDir);
        svc.child.kill('SIGTERM');
        expect((await svc.exited).code).toBe(0);

        rmSync(join(stateDir, 'registry.json'));
        svc = spawnService(bin.bin, serve);
        // The weakness: the service started, deleted every blob file and served empty lists.
        const refused = await Promise.race([svc.exited, waitHealthy(svc, address).then(() => 'started' as const, () => 'exited' as const)]);
        if (refused === 'started' || refused === 'exited') {
          svc.child.kill('SIGKILL');
          await svc.exited;
        }
        expect(refused, svc.stderr()).toEqual({ code: 3, signal: null });
        expect(blobFiles(stateDir)).toEqual([...aKeys, ...bKeys].map((h) => `${h}.json`).sort());
        const line = svc.stderr().split('\n').find((l) => l.startsWith('eve-tpm-service: '))!;
        expect(line).toContain('registry.json');
        expect(line).toContain(`${aKeys[0]}.json`);
        expect(line).toContain(`eve-tpm-service registry rebuild --state-dir ${stateDir}`);

        const rebuilt = await runBinAsync(bin.bin, ['registry', 'rebuild', '--state-dir', stateDir, '--tenants', tenants, '--key-store', mode]);
        expect(rebuilt.status, rebuilt.stderr).toBe(0);
        expect(rebuilt.stdout).toContain('3 key(s) restored');
        // Everything the registry said, except the creation instant (taken from the file).
        const strip = (es: typeof before) => es.map(({ createdAt: _c, ...rest }) => rest);
        expect(strip(readRegistry(stateDir))).toEqual(strip(before));
        await expect(runBinAsync(bin.bin, ['registry', 'rebuild', '--state-dir', stateDir, '--key-store', mode]).then((r) => r.stdout)).resolves.toContain('0 key(s) restored');

        svc = spawnService(bin.bin, serve);
        await waitHealthy(svc, address);
        const msg = Buffer.from('nothing was lost');
        for (const [c, keys] of [
          [a, aKeys],
          [b, bKeys],
        ] as const) {
          expect((await c.listKeys()).map((k) => k.handle)).toEqual(keys);
          for (const h of keys) {
            const k = await c.getKey(h);
            const s = await c.sign(h, { message: msg });
            expect(verify(k.hashAlg, msg, createPublicKey(k.pem), s.signature), h).toBe(true);
          }
        }
        a.close();
        b.close();
        svc.child.kill('SIGTERM');
        expect((await svc.exited).code).toBe(0);
      } finally {
        await killAll();
        await swtpm.stop();
      }
    }, 90_000);
  }

  it('keeps and reports blob files and TPM objects no entry owns, and never hands out their handles (tpm store)', async () => {
    const env = await startEnv({ tenants: [{ id: 'alice' }], config: { keyStore: 'tpm' } });
    try {
      const c = env.client('alice');
      const k1 = (await c.createKey({ type: 'ecc' })).handle;
      const k2 = (await c.createKey({ type: 'ecc' })).handle;
      expect([k1, k2]).toEqual(['0x81010000', '0x81010003']);
      await env.stopService();
      // A registry restored from a backup older than k2, and an unreadable file at the next handle.
      const regPath = join(env.stateDir, 'registry.json');
      const reg = JSON.parse(readFileSync(regPath, 'utf8')) as { keys: Array<{ handle: string }> };
      reg.keys = reg.keys.filter((k) => k.handle !== k2);
      writeFileSync(regPath, JSON.stringify(reg));
      writeFileSync(join(env.stateDir, 'keys', '0x81010004.json'), '{"handle":"0x81010004","tenant":');
      const from = env.logs.length;
      await env.restartService();
      const k3 = (await c.createKey({ type: 'ecc' })).handle;
      // The weakness: k2's blobs and the unreadable file were deleted, k2's object evicted.
      expect(blobFiles(env.stateDir)).toEqual(['0x81010000.json', '0x81010003.json', '0x81010004.json', `${k3}.json`]);
      expect(k3).toBe('0x81010005');
      const owned = await env.onTpm(async (tpm) => (await listHandles(tpm, 0x81010000, 0x8101ffff)).map(hexHandle));
      expect(owned).toEqual([k1, k2, k3]);
      const errors = env.logs.slice(from).filter((l) => l.event === 'recovery' && l.level === 50);
      expect(errors.map((l) => l.handle ?? l.file)).toEqual(expect.arrayContaining([k2, '0x81010004.json']));
      expect(env.logs.slice(from).some((l) => String(l.msg).includes('registry rebuild'))).toBe(true);
      expect(existsSync(join(env.stateDir, 'keys', '0x81010004.json'))).toBe(true);
      expect((await c.listKeys()).map((k) => k.handle)).toEqual([k1, k3]);
    } finally {
      await env.stop();
    }
  }, 60_000);
});
