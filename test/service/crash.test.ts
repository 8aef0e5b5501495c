/**
 * kill -9 of the real service process while it creates and deletes keys, in both key-store
 * modes — at every step between two durable writes (fault injection) and at randomly chosen
 * TPM commands — then restart: after recovery the registry, the blob files, the TPM and the
 * API must agree: no key without an owner, no entry without a usable key, nothing left loaded
 * in the TPM.
 */
import { createPublicKey, verify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tpm, listHandles, readPublic } from '../../src/tpm/index.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { CRASH_POINTS } from '../../src/service/tpm/crash-points.js';
import { parseRegistry, type KeyEntry } from '../../src/service/keys/registry.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { buildServiceBin, killAll, readRegistryFile, spawnService, waitHealthy, type ServiceProcess } from './child.js';
import { skipUnlessCI } from '../helpers/ci.js';

const RANDOM_KILLS = 30;
const POOL_FIRST = 0x81010000;
const POOL_LAST = 0x8101ffff;

/** Deterministic pseudo-random numbers (a failure can be replayed). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

/**
 * A pass-through between the service and swtpm that counts command frames, so a kill can land
 * on a chosen TPM command (an event) instead of a random delay: before the command reaches the
 * TPM, or after it does (the TPM acts; the service never sees the answer).
 */
interface TpmTap {
  path: string;
  /** Commands seen since the last arm(). */
  commands: number;
  arm(at: number, afterSending: boolean, kill: () => void): void;
  disarm(): void;
  close(): Promise<void>;
}

async function tapTpm(target: string, path: string): Promise<TpmTap> {
  const sockets = new Set<Socket>();
  let armed: { at: number; afterSending: boolean; kill: () => void } | undefined;
  const server = createServer((client) => {
    const up = createConnection(target);
    let cut = false; // after the kill nothing more passes either way
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('close', () => up.end());
    up.on('close', () => client.destroy());
    up.on('data', (d: Buffer) => {
      if (!cut) client.write(d);
    });
    let pending = Buffer.alloc(0);
    client.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (!cut && pending.length >= 6 && pending.length >= pending.readUInt32BE(2)) {
        const cmd = pending.subarray(0, pending.readUInt32BE(2));
        pending = pending.subarray(cmd.length);
        tap.commands++;
        const hit = armed !== undefined && tap.commands === armed.at ? armed : undefined;
        if (hit && !hit.afterSending) cut = true;
        else up.write(cmd);
        if (hit) {
          cut = true;
          armed = undefined;
          hit.kill();
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  const tap: TpmTap = {
    path,
    commands: 0,
    arm(at, afterSending, kill) {
      tap.commands = 0;
      armed = { at, afterSending, kill };
    },
    disarm() {
      armed = undefined;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return tap;
}

const hexHandle = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

interface Rig {
  client: ServiceClient;
  /** Starts the service (optionally armed to crash at a point) and waits until it is healthy. */
  start(crashAt?: string): Promise<ServiceProcess>;
  /** Restarts after a kill, lets recovery run, stops cleanly (exit 0) and checks everything at rest. */
  recoverAndCheck(): Promise<KeyEntry[]>;
  /** With the service running: the API lists exactly the registry's keys and each signs verifiably. */
  checkLive(): Promise<string[]>;
  recoveries: string[];
  /** Between the service and swtpm. */
  tap: TpmTap;
  close(): Promise<void>;
}

async function makeRig(bin: string, mode: 'blobs' | 'tpm'): Promise<Rig> {
  const swtpm: SwtpmInstance = await startSwtpm();
  const dir = await mkdtemp(join(tmpdir(), 'svc-crash-'));
  const secret = generateSecret();
  const tenants = join(dir, 'tenants.json');
  await writeFile(tenants, JSON.stringify({ tenants: [{ id: 'app', secretHash: hashSecret(secret), maxKeys: 4 }] }));
  const stateDir = join(dir, 'state');
  const sock = join(dir, 'svc.sock');
  const address = `unix:${sock}`;
  const tap = await tapTpm(swtpm.sockPath, join(dir, 'tpm-tap.sock'));
  const args = ['serve', '--tpm', `swtpm:unix:${tap.path}`, '--listen', address, '--tenants', tenants, '--state-dir', stateDir, '--key-store', mode, '--log-level', 'warn'];
  const client = new ServiceClient({ address, secret, timeoutMs: 10_000 });
  const recoveries: string[] = [];

  const registry = (): KeyEntry[] => readRegistryFile(stateDir);

  const start = async (crashAt?: string): Promise<ServiceProcess> => {
    const p = spawnService(bin, args, crashAt ? { EVE_TPM_SERVICE_CRASH_AT: crashAt } : {});
    await waitHealthy(p, address);
    return p;
  };

  const checkAtRest = async (): Promise<KeyEntry[]> => {
    const entries = registry();
    expect(entries.filter((e) => e.state !== 'committed'), 'unresolved entries').toEqual([]);
    const handles = entries.map((e) => e.handle).sort();
    expect(readdirSync(join(stateDir, 'keys')).sort(), 'blob files').toEqual(handles.map((h) => `${hexHandle(h)}.json`).sort());
    const tpm = new Tpm(swtpm.transport());
    try {
      const persistent = (await listHandles(tpm, POOL_FIRST, POOL_LAST)).sort();
      expect(persistent, 'persistent objects in the pool').toEqual(mode === 'tpm' ? handles : []);
      if (mode === 'tpm') for (const e of entries) expect(Buffer.from((await readPublic(tpm, e.handle)).name).toString('hex')).toBe(e.name);
      expect(await loadedHandles(tpm), 'left loaded in the TPM').toEqual({ transient: [], sessions: [] });
    } finally {
      await tpm.transport.close();
    }
    return entries;
  };

  return {
    client,
    start,
    recoveries,
    tap,
    async recoverAndCheck() {
      const svc = await start();
      svc.child.kill('SIGTERM');
      expect((await svc.exited).code, svc.stderr()).toBe(0);
      for (const line of svc.stderr().split('\n')) {
        if (line.includes('"event":"recovery"') || line.includes('"event":"tpm-cleanup"')) recoveries.push(JSON.parse(line).msg as string);
      }
      return checkAtRest();
    },
    async checkLive() {
      const listed = (await client.listKeys()).map((k) => k.handle);
      expect(listed).toEqual(registry().map((e) => hexHandle(e.handle)));
      const msg = Buffer.from('still usable');
      for (const h of listed) {
        const k = await client.getKey(h);
        const s = await client.sign(h, { message: msg });
        expect(verify('sha256', msg, createPublicKey(k.pem), s.signature), `signature of ${h}`).toBe(true);
      }
      return listed;
    },
    async close() {
      await killAll();
      await tap.close();
      await swtpm.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('crash safety (kill -9 of the service process)', () => {
  let bin: { bin: string; cleanup: () => void };
  beforeAll(() => {
    bin = buildServiceBin();
  });
  afterAll(() => bin?.cleanup());

  for (const mode of ['blobs', 'tpm'] as const) {
    it(`recovers from a crash at every step of create and delete (${mode} store)`, async () => {
      const rig = await makeRig(bin.bin, mode);
      try {
        const points = CRASH_POINTS.filter((p) => mode === 'tpm' || (p !== 'create:after-persist' && p !== 'delete:after-evict'));
        for (const point of points) {
          // A key to delete (made by an unarmed service).
          let victim: string | undefined;
          if (point.startsWith('delete:')) {
            const svc = await rig.start();
            victim = (await rig.client.createKey({ type: 'ecc' })).handle;
            svc.child.kill('SIGTERM');
            await svc.exited;
          }
          const svc = await rig.start(point);
          const before = (await rig.client.listKeys()).map((k) => k.handle);
          const op = point.startsWith('create:') ? rig.client.createKey({ type: 'ecc' }) : rig.client.deleteKey(victim!);
          await expect(op, `${point}: the request must die with the process`).rejects.toThrow();
          expect((await svc.exited).signal, point).toBe('SIGKILL');
          const after = (await rig.recoverAndCheck()).map((e) => hexHandle(e.handle));
          // A creation the client never saw is rolled back; a deletion asked for is finished.
          expect(after, point).toEqual(before.filter((h) => h !== victim));
        }
        expect(rig.recoveries.filter((m) => m.includes('rolled back')).length).toBeGreaterThanOrEqual(2);
        expect(rig.recoveries.filter((m) => m.includes('finished an interrupted key deletion')).length).toBeGreaterThanOrEqual(1);
      } finally {
        await rig.close();
      }
    }, 60_000);

    it(`keeps registry and TPM in agreement through ${RANDOM_KILLS} random kills during create/delete (${mode} store)`, async () => {
      const rig = await makeRig(bin.bin, mode);
      try {
        const rand = lcg(mode === 'blobs' ? 1 : 2);
        const outcomes = { completed: 0, interrupted: 0 };
        // The kill lands on the k-th TPM command of the operation (k random); once an
        // operation has completed, k is drawn from its command count plus one, so some kills
        // land inside operations and some after them, on any machine.
        const maxAt = { create: 40, delete: 10 };
        for (let i = 0; i < RANDOM_KILLS; i++) {
          const svc = await rig.start();
          const keys = await rig.checkLive();
          const create = keys.length === 0 || (keys.length < 4 && rand() < 0.6);
          const op = create ? rig.client.createKey({ type: rand() < 0.5 ? 'ecc' : 'rsa' }) : rig.client.deleteKey(keys[Math.floor(rand() * keys.length)]!);
          const kind = create ? 'create' : 'delete';
          rig.tap.arm(1 + Math.floor(rand() * maxAt[kind]), rand() < 0.5, () => svc.child.kill('SIGKILL'));
          await op.then(
            () => {
              outcomes.completed++;
              maxAt[kind] = rig.tap.commands + 1;
            },
            () => {
              outcomes.interrupted++;
            },
          );
          rig.tap.disarm();
          svc.child.kill('SIGKILL');
          await svc.exited;
          await rig.recoverAndCheck();
        }
        // The random instants must have cut operations short and let some finish.
        expect(outcomes.interrupted).toBeGreaterThan(0);
        expect(outcomes.completed).toBeGreaterThan(0);
        // Killed mid-command, the TPM kept objects loaded that the restart flushed.
        expect(rig.recoveries.some((m) => m.includes('flushed'))).toBe(true);
      } finally {
        await rig.close();
      }
    }, 240_000); // 30 kill-restart cycles: ~45–80 s on a loaded 2-core machine
  }
});
