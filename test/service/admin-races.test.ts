/**
 * Admin commands run at the same time as each other and as a live service: concurrent
 * `tenant add`/`remove` processes lose no update (the tenants file is changed under a lock,
 * a stale lock of a dead process is taken over), and `tenant remove --purge` during creates of
 * that tenant leaves none of its keys behind — registry, blob files, TPM — and reports what
 * it deleted.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ServiceClient } from '../../src/service/client/client.js';
import { acquireLock, LockBusyError } from '../../src/service/admin/lock.js';
import { listHandles, Tpm } from '../../src/tpm/index.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { startSwtpm, swtpmAvailable } from '../helpers/swtpm.js';
import { blobFiles, deadPid, hexHandle, readRegistry, runBinAsync, secretOf } from './admin-helpers.js';
import { buildServiceBin, killAll, spawnService, waitHealthy } from './child.js';
import { eventually } from './env.js';

/**
 * The lock's back-off sleeps, passed through to the real timer but announced: a waiter that
 * has found the lock held and backs off is an event, not a guess at a delay.
 */
const backoffs = vi.hoisted(() => ({ next: [] as Array<() => void> }));
vi.mock('node:timers/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:timers/promises')>();
  return {
    ...real,
    setTimeout: (...args: Parameters<typeof real.setTimeout>) => {
      for (const w of backoffs.next.splice(0)) w();
      return real.setTimeout(...args);
    },
  };
});
const nextBackoff = (): Promise<void> => new Promise((r) => backoffs.next.push(r));

const ROUNDS = 3;
const N = 6;

describe('lock files', () => {
  it('serializes holders, takes over a dead holder (and a dead takeover guard), and bounds the wait for a live one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'svc-lock-'));
    try {
      const path = join(dir, 'x.lock');
      const events: string[] = [];
      const a = await acquireLock(path, { waitMs: 0 });
      const waiting = nextBackoff();
      const b = acquireLock(path, { waitMs: 10_000 }).then((release) => (events.push('b holds'), release));
      await waiting; // b found the lock held and waits
      events.push('a releases');
      await a();
      await (await b)();
      expect(events).toEqual(['a releases', 'b holds']);
      expect(readdirSync(dir)).toEqual([]);

      // A live holder (this process, another token): a bounded wait, then an error naming it.
      const held = await acquireLock(path, { waitMs: 0 });
      await expect(acquireLock(path, { waitMs: 50 })).rejects.toBeInstanceOf(LockBusyError);
      await expect(acquireLock(path, { waitMs: 0 })).rejects.toThrow(`held by process ${process.pid}`);
      await held();

      // A holder that died, and a takeover guard left by a taker killed inside it long ago.
      const dead = await deadPid();
      writeFileSync(path, `${dead} 00\n`);
      writeFileSync(`${path}.takeover`, `${dead} 11\n`);
      const old = new Date('2000-01-01T00:00:00Z'); // long past the guard's 5 s: stale whatever the clock says
      utimesSync(`${path}.takeover`, old, old);
      const c = await acquireLock(path, { waitMs: 0 });
      expect(readFileSync(path, 'utf8')).toMatch(new RegExp(`^${process.pid} [0-9a-f]{16}\n$`));
      await c();
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('admin commands against each other and a live service', () => {
  let bin: { bin: string; cleanup: () => void };
  let dir: string;
  beforeAll(async () => {
    bin = buildServiceBin();
    dir = await mkdtemp(join(tmpdir(), 'svc-races-'));
  });
  afterAll(async () => {
    await killAll();
    if (dir) await rm(dir, { recursive: true, force: true });
    bin?.cleanup();
  });

  const tenantsIn = (file: string): Array<{ id: string; uid: string; secretHash: string }> =>
    (JSON.parse(readFileSync(file, 'utf8')) as { tenants: Array<{ id: string; uid: string; secretHash: string }> }).tenants;

  it(`${N} concurrent tenant add processes make ${N} tenants, ${N} removes remove them, a stale lock is taken over`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const file = join(dir, `t${round}.json`);
      // The last round starts with the lock of a process that died holding it.
      if (round === ROUNDS - 1) writeFileSync(`${file}.lock`, `${await deadPid()} 0123456789abcdef\n`);
      const adds = await Promise.all(Array.from({ length: N }, (_, i) => runBinAsync(bin.bin, ['tenant', 'add', '--id', `app${i}`, '--tenants', file])));
      for (const a of adds) expect(a.status, a.stderr).toBe(0);
      const inFile = tenantsIn(file);
      expect(inFile.map((t) => t.id).sort(), `round ${round}`).toEqual(Array.from({ length: N }, (_, i) => `app${i}`));
      // Every printed secret is the one stored for its tenant; every record is distinct.
      adds.forEach((a, i) => expect(inFile.find((t) => t.id === `app${i}`)!.secretHash).toBe('sha256:' + createHash('sha256').update(secretOf(a.stdout)).digest('hex')));
      expect(new Set(inFile.map((t) => t.uid)).size).toBe(N);
      // No lock, takeover guard or temp file is left behind.
      expect(readdirSync(dir).filter((n) => n.startsWith(`t${round}.json`))).toEqual([`t${round}.json`]);
    }
    const file = join(dir, 't0.json');
    const state = join(dir, 'rm-state');
    const removes = await Promise.all(Array.from({ length: N }, (_, i) => runBinAsync(bin.bin, ['tenant', 'remove', '--id', `app${i}`, '--tenants', file, '--state-dir', state])));
    for (const r of removes) expect(r.status, r.stderr).toBe(0);
    expect(tenantsIn(file)).toEqual([]);
  }, 60_000);

  for (const mode of ['blobs', 'tpm'] as const) {
    it(`tenant remove --purge during ${N} creates of that tenant leaves none of its keys (${mode} store)`, async () => {
      const swtpm = await startSwtpm();
      try {
        const sub = join(dir, `purge-${mode}`);
        mkdirSync(sub);
        const tenants = join(sub, 'tenants.json');
        const stateDir = join(sub, 'state');
        const sock = join(sub, 's.sock');
        const add = async (id: string) => secretOf((await runBinAsync(bin.bin, ['tenant', 'add', '--id', id, '--max-keys', '16', '--tenants', tenants])).stdout);
        const zed = new ServiceClient({ address: `unix:${sock}`, secret: await add('zed') });
        const keep = new ServiceClient({ address: `unix:${sock}`, secret: await add('keep') });
        const zedRecord = tenantsIn(tenants).find((t) => t.id === 'zed')!.uid;
        const svc = spawnService(bin.bin, ['--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', `unix:${sock}`, '--tenants', tenants, '--state-dir', stateDir, '--key-store', mode, '--log-level', 'warn']);
        await waitHealthy(svc, `unix:${sock}`);
        const kept = (await keep.createKey({ type: 'ecc' })).handle;

        // Slow (RSA) creates; the purge starts once the first of them is in the registry, so it
        // lands while most are under way.
        let succeeded = 0;
        const failures: unknown[] = [];
        const creates = Array.from({ length: N }, () =>
          zed.createKey({ type: 'rsa' }).then(
            () => void succeeded++,
            (e: unknown) => void failures.push(e),
          ),
        );
        await eventually(() => readRegistry(stateDir).some((e) => e.owner === zedRecord), 30_000, 'a key of zed in the registry');
        const purge = await runBinAsync(bin.bin, ['tenant', 'remove', '--id', 'zed', '--purge', '--tenants', tenants, '--state-dir', stateDir]);
        await Promise.all(creates);
        expect(purge.status, purge.stderr).toBe(0);
        expect(succeeded + failures.length).toBe(N);
        // A create that lost the race was refused as the removed tenant it is (no 5xx).
        for (const f of failures) expect(f).toMatchObject({ status: 401 });
        // What the command says it deleted is every key a create handed out, and nothing is left.
        const said = /(\d+) key\(s\) purged/.exec(purge.stdout);
        expect(said, purge.stdout).not.toBeNull();
        expect(Number(said![1])).toBe(succeeded);
        expect(purge.stdout).not.toContain('left');
        const entries = readRegistry(stateDir);
        expect(entries.filter((e) => e.owner === zedRecord || e.tenant === 'zed')).toEqual([]);
        expect(entries.map((e) => hexHandle(e.handle))).toEqual([kept]);
        expect(blobFiles(stateDir)).toEqual([`${kept}.json`]);
        const msg = Buffer.from('bystander');
        expect(verify('sha256', msg, createPublicKey((await keep.getKey(kept)).pem), (await keep.sign(kept, { message: msg })).signature)).toBe(true);
        zed.close();
        keep.close();
        svc.child.kill('SIGTERM');
        expect((await svc.exited).code).toBe(0);
        // swtpm serves one connection at a time: look at the TPM once the service is gone.
        const tpm = new Tpm(swtpm.transport());
        try {
          expect((await listHandles(tpm, 0x81010000, 0x8101ffff)).map(hexHandle)).toEqual(mode === 'tpm' ? [kept] : []);
        } finally {
          await tpm.transport.close();
        }
      } finally {
        await killAll();
        await swtpm.stop();
      }
    }, 90_000);
  }
});
