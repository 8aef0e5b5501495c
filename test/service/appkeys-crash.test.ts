/**
 * kill -9 of the real service process while it creates and deletes general keys (issue 12), in
 * both key-store modes, at every step between two durable writes — including right after the
 * record's app parent is written and before its first key commits — then restart: nothing is
 * lost or duplicated (no orphan entry, one parent per record, the quota counted right, nothing
 * left loaded) and the next genkey works. crash.test.ts does the same for AKs.
 */
import { createPublicKey, verify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tpm, listHandles, readPublic } from '../../src/tpm/index.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { CRASH_POINTS, type CrashPoint } from '../../src/service/tpm/crash-points.js';
import { PARENTS_DIR } from '../../src/service/keys/app-parents.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable } from '../helpers/swtpm.js';
import { buildServiceBin, killAll, readRegistryFile, spawnService, waitHealthy, type ServiceProcess } from './child.js';
import { skipUnlessCI } from '../helpers/ci.js';

const POOL_FIRST = 0x81010000;
const POOL_LAST = 0x8101ffff;
const MAX_KEYS = 3;
const hexHandle = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('crash safety of general keys (kill -9 of the service process)', () => {
  let bin: { bin: string; cleanup: () => void };
  beforeAll(() => {
    bin = buildServiceBin();
  });
  afterAll(() => bin?.cleanup());

  for (const mode of ['blobs', 'tpm'] as const) {
    it(`recovers from a crash at every step of a general key's create and delete (${mode} store)`, async () => {
      const swtpm = await startSwtpm();
      const dir = await mkdtemp(join(tmpdir(), 'svc-appcrash-'));
      try {
        const secret = generateSecret();
        const tenants = join(dir, 'tenants.json');
        await writeFile(tenants, JSON.stringify({ tenants: [{ id: 'app', secretHash: hashSecret(secret), maxKeys: MAX_KEYS }] }));
        const stateDir = join(dir, 'state');
        const address = `unix:${join(dir, 'svc.sock')}`;
        const args = ['serve', '--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', address, '--tenants', tenants, '--state-dir', stateDir, '--key-store', mode, '--log-level', 'warn'];
        const client = new ServiceClient({ address, secret, timeoutMs: 10_000 });
        const start = async (crashAt?: string): Promise<ServiceProcess> => {
          const p = spawnService(bin.bin, args, crashAt ? { EVE_TPM_SERVICE_CRASH_AT: crashAt } : {});
          await waitHealthy(p, address);
          return p;
        };
        const parents = (): string[] => readdirSync(join(stateDir, PARENTS_DIR)).sort();
        const stop = async (p: ServiceProcess): Promise<void> => {
          p.child.kill('SIGTERM');
          expect((await p.exited).code, p.stderr()).toBe(0);
        };

        /** Restarted after the kill: registry, blob files, parents and TPM agree; every key signs. */
        const recoverAndCheck = async (): Promise<string[]> => {
          const svc = await start();
          const listed = (await client.listKeys()).map((k) => k.handle);
          const msg = Buffer.from('still usable');
          for (const h of listed) {
            const k = await client.getKey(h);
            expect(k.kind).toBe('general');
            if (k.usage !== 'sign') continue;
            expect(verify('sha256', msg, createPublicKey(k.pem), (await client.sign(h, { message: msg })).signature), `signature of ${h}`).toBe(true);
          }
          await stop(svc);
          const entries = readRegistryFile(stateDir);
          expect(entries.filter((e) => e.state !== 'committed'), 'unresolved entries').toEqual([]);
          expect(entries.map((e) => hexHandle(e.handle)), 'API and registry').toEqual(listed);
          expect(readdirSync(join(stateDir, 'keys')).sort(), 'blob files').toEqual(entries.map((e) => `${hexHandle(e.handle)}.json`).sort());
          expect(parents().filter((n) => n.includes('.tmp') || !n.endsWith('.json')), 'temp files').toEqual([]);
          const tpm = new Tpm(swtpm.transport());
          try {
            const persistent = (await listHandles(tpm, POOL_FIRST, POOL_LAST)).sort();
            expect(persistent, 'persistent objects in the pool').toEqual(mode === 'tpm' ? entries.map((e) => e.handle).sort() : []);
            if (mode === 'tpm') for (const e of entries) expect(Buffer.from((await readPublic(tpm, e.handle)).name).toString('hex')).toBe(e.name);
            expect(await loadedHandles(tpm), 'left loaded in the TPM').toEqual({ transient: [], sessions: [] });
          } finally {
            await tpm.transport.close();
          }
          return listed;
        };

        // The record's first general key, killed right after its parent is written.
        let svc = await start('create:after-parent');
        await expect(client.createKey({ type: 'ecc', kind: 'general' })).rejects.toThrow();
        expect((await svc.exited).signal).toBe('SIGKILL');
        expect(await recoverAndCheck()).toEqual([]);
        const parentFiles = parents();
        expect(parentFiles).toHaveLength(1); // kept: the next key is made under it
        const parentText = readFileSync(join(stateDir, PARENTS_DIR, parentFiles[0]!), 'utf8');

        // Every creation step (a general key's own path), and a delete (the same steps as an AK's,
        // which crash.test.ts covers at every point): bounded, as each point costs two restarts.
        const points: CrashPoint[] = CRASH_POINTS.filter((p) => (p.startsWith('create:') && (mode === 'tpm' || p !== 'create:after-persist')) || p === (mode === 'tpm' ? 'delete:after-evict' : 'delete:after-pending'));
        for (const point of points) {
          let victim: string | undefined;
          if (point.startsWith('delete:')) {
            svc = await start();
            victim = (await client.createKey({ type: 'ecc', kind: 'general', usage: 'decrypt' })).handle;
            await stop(svc);
          }
          svc = await start(point);
          const before = (await client.listKeys()).map((k) => k.handle);
          const op = point.startsWith('create:') ? client.createKey({ type: 'ecc', kind: 'general', curve: 'P-384' }) : client.deleteKey(victim!);
          await expect(op, `${point}: the request must die with the process`).rejects.toThrow();
          expect((await svc.exited).signal, point).toBe('SIGKILL');
          expect(await recoverAndCheck(), point).toEqual(before.filter((h) => h !== victim));
          expect(parents(), `${point}: one parent, the same`).toEqual(parentFiles);
          expect(readFileSync(join(stateDir, PARENTS_DIR, parentFiles[0]!), 'utf8')).toBe(parentText);
        }

        // The quota counts what is there: the keys left plus new ones fill it exactly.
        svc = await start();
        const have = (await client.listKeys()).length;
        for (let i = have; i < MAX_KEYS; i++) await client.createKey({ type: 'ecc', kind: 'general' });
        await expect(client.createKey({ type: 'ecc', kind: 'general' })).rejects.toMatchObject({ status: 403, code: 'QUOTA_EXCEEDED' });
        await stop(svc);
        expect(await recoverAndCheck()).toHaveLength(MAX_KEYS);
        expect(parents()).toEqual(parentFiles);
      } finally {
        await killAll();
        await swtpm.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }, 180_000);
  }
});
