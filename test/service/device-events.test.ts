/**
 * What a device goes through, in both key stores: the TPM reset (power cycle, Startup(CLEAR)),
 * resumed or restarted after Shutdown(STATE), cleared, a key file damaged; the service killed
 * in the middle of a sign or a list; the host losing power inside a file write. Afterwards every
 * committed key loads and signs, nothing half-made is served, and a key that truly cannot be
 * loaded any more gets an honest 409 naming the key and why (and the host log says so too).
 *
 * Not repeated here: kill -9 between the durable steps of create/delete and at random instants
 * (crash.test.ts), swtpm dying under requests and a service started without a TPM
 * (tpm-failure.test.ts).
 *
 * A power loss after a rename but before the directory's fsync may undo the rename; the states
 * it can leave (old file + complete temp file, old file alone, new file) are exactly those of
 * a kill at `write:after-temp`, before the write, and at `write:after-rename`, so those kills
 * cover it. A torn temp file (power lost before its fsync) is planted by hand.
 */
import { createPublicKey, verify } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_RH, TPM_SU, Tpm, command, evictPersistent, listHandles, readPublic } from '../../src/tpm/index.js';
import { ServiceClient, ServiceError, type KeyInfo } from '../../src/service/client/client.js';
import { parseRegistry, type KeyEntry, type KeyStoreKind } from '../../src/service/keys/registry.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { buildServiceBin, killAll, readRegistryFile, spawnService, waitHealthy, type ServiceProcess } from './child.js';
import { eventually, failure, leftLoaded, startEnv, wait, type TestEnv } from './env.js';
import { Shutdown } from '../helpers/hierarchy.js';

const POOL = [0x81010000, 0x8101ffff] as const;
const MODES: readonly KeyStoreKind[] = ['blobs', 'tpm'];

// A command the service never sends (Shutdown: ../helpers/hierarchy.ts); the tests play the platform.
/** TPM2_Clear (Part 3 §24.6): new storage seed and proofs, objects of the owner and endorsement hierarchies gone. */
const Clear = command({ name: 'Clear', code: 0x126, spec: 'Part 3 §24.6', handles: { authHandle: 'auth' }, params: {}, response: {} });


/** A message fed slowly, so that a request is mid-hash when something happens. */
function slowMessage(): { stream: Readable; stop(): void } {
  let feed = true;
  const stream = Readable.from(
    (async function* () {
      for (let i = 0; i < 500 && feed; i++) {
        yield Buffer.alloc(4096, i);
        await wait(10);
      }
    })(),
  );
  return { stream, stop: () => (feed = false) };
}

/** The key signs an inline and a streamed (hash sequence) message, and both verify. */
async function signsBoth(client: ServiceClient, key: KeyInfo): Promise<void> {
  const small = Buffer.from(`inline for ${key.handle}`);
  const big = Buffer.alloc(3000, key.handle);
  for (const [msg, message] of [
    [small, small],
    [big, Readable.from([big.subarray(0, 1500), big.subarray(1500)])],
  ] as const) {
    const s = await client.sign(key.handle, { message });
    expect(verify('sha256', msg, createPublicKey(key.pem), s.signature), `signature of ${key.handle}`).toBe(true);
  }
}

// ---------------------------------------------------------------------------------------------
// TPM events, service in process

async function freshEnv(mode: KeyStoreKind): Promise<TestEnv> {
  const env = await startEnv({ tenants: [{ id: 'alice' }, { id: 'bob' }], config: { keyStore: mode } });
  await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
  return env;
}

const healthOk = async (env: TestEnv): Promise<boolean> => (await new ServiceClient({ address: env.unix }).health()).status === 'ok';

/** Registry settled, nothing loaded in the TPM, and (tpm store) the pool holds exactly the committed keys. */
async function atRest(env: TestEnv, mode: KeyStoreKind): Promise<void> {
  const entries = env.service.core.registry.all();
  expect(entries.filter((e) => e.state !== 'committed'), 'unresolved registry entries').toEqual([]);
  const loaded = await leftLoaded(env);
  const persistent = await env.onTpm((tpm) => listHandles(tpm, ...POOL));
  expect(loaded, 'left loaded in the TPM').toEqual({ transient: [], sessions: [] });
  if (mode === 'tpm') expect(persistent.sort(), 'persistent objects in the pool').toEqual(entries.map((e) => e.handle).sort());
}

/** Signs until the answer says the key is lost for good (tpm store: first it is being restored). */
async function lostAnswer(client: ServiceClient, handle: string): Promise<ServiceError[]> {
  const answers: ServiceError[] = [];
  await eventually(
    async () => {
      const a = await failure(client.sign(handle, { message: new Uint8Array(8) }));
      answers.push(a);
      // Anything but a 409 is already the wrong answer: stop asking.
      return a.status !== 409 || /can no longer be loaded by this TPM/.test(a.message);
    },
    15_000,
    `an answer saying ${handle} is lost`,
  );
  return answers;
}

function expectHonest(answers: ServiceError[], handle: string, why: RegExp): void {
  for (const a of answers) {
    // 409: the key's state, not a TPM malfunction (502) and never a bug (500).
    expect({ status: a.status, code: a.code }, a.message).toEqual({ status: 409, code: 'CONFLICT' });
    expect(a.message).toContain(handle);
    expect(a.message).not.toMatch(/^TPM2_/);
  }
  const last = answers.at(-1)!;
  expect(last.message).toMatch(why);
  expect(last.message).toMatch(/delete it and create a new key/);
}

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('device events', () => {
  for (const mode of MODES) {
    describe(`${mode} key store, TPM events`, () => {
      let env: TestEnv | undefined;
      afterAll(async () => {
        await env?.stop();
      });
      const next = async (): Promise<TestEnv> => {
        await env?.stop();
        return (env = await freshEnv(mode));
      };

      it('keys survive a TPM reset (power cycle, Startup(CLEAR)) that cuts a streamed sign short', async () => {
        const env = await next();
        const alice = env.client('alice');
        const bob = env.client('bob');
        const keys: Array<[ServiceClient, KeyInfo]> = [
          [alice, await alice.createKey({ type: 'rsa' })],
          [bob, await bob.createKey({ type: 'ecc' })],
        ];
        const from = env.commands.length;
        const slow = slowMessage();
        const inFlight = alice.sign(keys[0]![1].handle, { message: slow.stream }).then(
          (r) => ({ ok: r }),
          (e: unknown) => ({ err: e as ServiceError }),
        );
        await eventually(() => env.commands.slice(from).includes('SequenceUpdate'), 5000, 'the hash to start');
        await env.swtpm.restart(); // SIGTERM + start on the same state: Startup(CLEAR)
        const out = await inFlight;
        slow.stop();
        // The sequence died with the reset: the request fails as a TPM failure, never silently signs a partial hash.
        expect('err' in out, 'a hash cut by a TPM reset must not produce a signature').toBe(true);
        const e = (out as { err: ServiceError }).err;
        expect(e).toBeInstanceOf(ServiceError);
        expect([502, 503, 504], `${e.status} ${e.message}`).toContain(e.status);
        await eventually(() => healthOk(env), 15_000, 'health ok after the reset');
        for (const [c, k] of keys) await signsBoth(c, k);
        await atRest(env, mode);
      });

      it('keys survive Shutdown(STATE) followed by a TPM resume (Startup(STATE)) or restart (Startup(CLEAR))', async () => {
        const env = await next();
        const alice = env.client('alice');
        const key = await alice.createKey({ type: 'ecc' });
        for (const flags of ['not-need-init,startup-state', 'not-need-init,startup-clear']) {
          await env.onTpm((tpm) => tpm.run(Shutdown, { shutdownType: TPM_SU.STATE }));
          await env.swtpm.restart({ flags });
          // No request failed, so nothing told the service: the first request after must simply work.
          await signsBoth(alice, key);
          expect(await healthOk(env), flags).toBe(true);
        }
        await atRest(env, mode);
      });

      it('answers honestly for keys a TPM clear destroyed, and everything else keeps working', async () => {
        const env = await next();
        const alice = env.client('alice');
        const bob = env.client('bob');
        const a = await alice.createKey({ type: 'rsa' });
        const b = await bob.createKey({ type: 'ecc' });
        await env.onTpm((tpm) => tpm.run(Clear, { authHandle: TPM_RH.PLATFORM }));

        // A key made after the clear works.
        const c = await alice.createKey({ type: 'ecc' });
        await signsBoth(alice, c);

        for (const [client, k] of [
          [alice, a],
          [bob, b],
        ] as const) {
          expectHonest(await lostAnswer(client, k.handle), k.handle, /TPM was cleared/);
        }
        // The host log names each lost key and the reason, once.
        const lostLog = env.logs.filter((l) => l.event === 'key-unusable');
        expect(lostLog.map((l) => l.handle).sort()).toEqual([a.handle, b.handle].sort());
        for (const l of lostLog) expect(l.reason).toMatch(/cleared/);
        // Known lost: refused without another TPM command.
        const sent = env.commands.length;
        expect((await failure(bob.sign(b.handle, { message: new Uint8Array(1) }))).status).toBe(409);
        expect(env.commands.length).toBe(sent);

        // A restart does not stall on the lost keys (recovery finishes, health turns ok).
        await env.restartService();
        await eventually(() => healthOk(env), 15_000, 'health ok after a restart with lost keys');
        expectHonest(await lostAnswer(bob, b.handle), b.handle, /TPM was cleared/);
        await signsBoth(alice, c);
        // The tenants can delete the lost keys; nothing of them is left.
        await alice.deleteKey(a.handle);
        await bob.deleteKey(b.handle);
        expect((await alice.listKeys()).map((k) => k.handle)).toEqual([c.handle]);
        expect(await bob.listKeys()).toEqual([]);
        await atRest(env, mode);
      });

      it('answers honestly for a key whose file is damaged; a persistent object is restored when it can be', async () => {
        const env = await next();
        const alice = env.client('alice');
        const damaged = await alice.createKey({ type: 'ecc' });
        const unreadable = await alice.createKey({ type: 'rsa' });
        const healthy = await alice.createKey({ type: 'ecc' });
        await env.stopService();
        // One bit of the wrapped private part flipped (the file still parses); another file garbled.
        const file = (h: string): string => join(env.stateDir, 'keys', `${h}.json`);
        const j = JSON.parse(readFileSync(file(damaged.handle), 'utf8')) as { private: string };
        const priv = Buffer.from(j.private, 'base64');
        priv[priv.length - 3]! ^= 0x01;
        writeFileSync(file(damaged.handle), JSON.stringify({ ...j, private: priv.toString('base64') }));
        writeFileSync(file(unreadable.handle), '{"handle":');
        await env.restartService();
        await eventually(() => healthOk(env), 15_000, 'health ok');

        if (mode === 'blobs') {
          expectHonest(await lostAnswer(alice, damaged.handle), damaged.handle, /key file is damaged/);
          const e = await failure(alice.sign(unreadable.handle, { message: new Uint8Array(1) }));
          expect({ status: e.status, code: e.code }).toEqual({ status: 409, code: 'CONFLICT' });
          expect(e.message).toContain(unreadable.handle);
        } else {
          // The persistent objects are intact: the damaged files are not even needed.
          await signsBoth(alice, damaged);
          await signsBoth(alice, unreadable);
          // Evicted behind the service's back: restored from good blobs, reported lost from bad ones.
          await env.onTpm(async (tpm) => {
            for (const k of [damaged, unreadable, healthy]) await evictPersistent(tpm, Number(k.handle));
          });
          const first = await failure(alice.sign(healthy.handle, { message: new Uint8Array(1) }));
          expect({ status: first.status, code: first.code }).toEqual({ status: 409, code: 'CONFLICT' });
          expect(first.message).toMatch(/missing from the TPM.*restoring/);
          await eventually(
            () =>
              alice.sign(healthy.handle, { message: new Uint8Array(1) }).then(
                () => true,
                () => false,
              ),
            15_000,
            'the evicted key to be restored',
          );
          expectHonest(await lostAnswer(alice, damaged.handle), damaged.handle, /key file is damaged/);
          expectHonest(await lostAnswer(alice, unreadable.handle), unreadable.handle, /blobs are missing or unreadable/);
        }
        expect(env.logs.filter((l) => l.event === 'key-unusable').map((l) => l.handle)).toContain(damaged.handle);
        await signsBoth(alice, healthy);
        await alice.deleteKey(damaged.handle);
        await alice.deleteKey(unreadable.handle);
        await atRest(env, mode);
      });
    });
  }

  // -------------------------------------------------------------------------------------------
  // The real process killed, and power lost mid-write

  describe('the service process killed (kill -9) and the host losing power', () => {
    let bin: { bin: string; cleanup: () => void };
    beforeAll(() => {
      bin = buildServiceBin();
    });
    afterAll(() => bin?.cleanup());

    for (const mode of MODES) {
      it(`keeps every committed key after kills mid-sign, mid-list and inside file writes (${mode} store)`, async () => {
        const rig = await makeRig(bin.bin, mode);
        try {
          let svc = await rig.start();
          const keys = [await rig.client.createKey({ type: 'rsa' }), await rig.client.createKey({ type: 'ecc' })];
          await rig.stop(svc);

          // Mid-sign: right after the TPM answered a command, with whatever it loaded still loaded.
          const signKills: Array<[string, () => Promise<unknown>, boolean]> = [
            // blobs: the key (and EK and policy session) just loaded; tpm: the signature made, never delivered.
            [mode === 'blobs' ? 'after:Load' : 'after:Sign', () => rig.client.sign(keys[0]!.handle, { message: Buffer.from('inline') }), mode === 'blobs'],
            // A hash sequence open in the TPM.
            ['after:SequenceUpdate', () => rig.client.sign(keys[1]!.handle, { message: Readable.from([Buffer.alloc(2048, 1), Buffer.alloc(2048, 2)]) }), true],
          ];
          for (const [point, request, leavesLoaded] of signKills) {
            svc = await rig.start(point);
            await expect(request(), point).rejects.toThrow();
            expect((await svc.exited).signal, point).toBe('SIGKILL');
            const { log } = await rig.recoverAndCheck(keys.map((k) => k.handle));
            if (leavesLoaded) expect(log.some((l) => l.event === 'tpm-cleanup' && Number(l.flushed) > 0), `${point}: the restart flushes what the dead process left loaded`).toBe(true);
          }

          // Mid-list: nothing to interrupt but the answers themselves.
          svc = await rig.start();
          const lists = Array.from({ length: 20 }, () => rig.client.listKeys().then(() => 'ok', () => 'cut'));
          svc.child.kill('SIGKILL');
          await svc.exited;
          expect(await Promise.all(lists)).toContain('cut');
          await rig.recoverAndCheck(keys.map((k) => k.handle));

          // Power lost inside a durable write. A create writes registry (pending), blob file,
          // registry (committed); a delete writes registry (pending-delete), removes the blob
          // file, writes the registry without the entry.
          let live = keys.map((k) => k.handle);
          const writeKills: Array<{ point: string; op: 'create' | 'delete'; kept: boolean }> = [
            ...[1, 2, 3].map((n) => ({ point: `write:after-temp@${n}`, op: 'create' as const, kept: false })),
            ...[1, 2].map((n) => ({ point: `write:after-rename@${n}`, op: 'create' as const, kept: false })),
            // Committed on disk but the 201 never sent: the key exists (the tenant sees it in its list).
            { point: 'write:after-rename@3', op: 'create', kept: true },
            // The intent to delete never reached the disk: the key stays, usable.
            { point: 'write:after-temp@1', op: 'delete', kept: true },
            { point: 'write:after-rename@1', op: 'delete', kept: false },
            { point: 'write:after-temp@2', op: 'delete', kept: false },
          ];
          let planted = false;
          for (const { point, op, kept } of writeKills) {
            const label = `${op} ${point}`;
            // A delete needs a key to spare.
            if (op === 'delete' && live.length < 3) {
              svc = await rig.start();
              live.push((await rig.client.createKey({ type: 'ecc' })).handle);
              await rig.stop(svc);
            }
            const victim = live.at(-1)!;
            svc = await rig.start(point);
            const request = op === 'create' ? rig.client.createKey({ type: 'ecc' }) : rig.client.deleteKey(victim);
            await expect(request, label).rejects.toThrow();
            expect((await svc.exited).signal, label).toBe('SIGKILL');
            const pending = rig.registry().find((e) => e.state !== 'committed');
            if (!planted) {
              // A torn temp file of each kind, as a power loss before its fsync leaves them.
              writeFileSync(join(rig.stateDir, 'registry.json.tmp-99999-0bad0bad'), '{"version":1,"ke');
              writeFileSync(join(rig.stateDir, 'keys', '0x81010007.json.tmp-99999-0bad0bad'), '{"hand');
              planted = true;
            }
            let expected: string[];
            if (op === 'create') {
              const made = rig.registry().map((e) => hexHandle(e.handle)).filter((h) => !live.includes(h));
              expected = kept ? [...live, ...made] : live;
              if (kept) expect(made, `${label}: the committed key`).toHaveLength(1);
              else if (pending) expect(pending.state, label).toBe('pending-create');
            } else {
              expected = kept ? live : live.filter((h) => h !== victim);
            }
            live = (await rig.recoverAndCheck(expected)).handles;
          }
        } finally {
          await rig.close();
        }
      }, 90_000);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// real-process rig

const hexHandle = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

interface LogLine {
  event?: string;
  [k: string]: unknown;
}

interface Rig {
  /** A client of the service started last (a new one per start: a killed service leaves dead connections). */
  readonly client: ServiceClient;
  stateDir: string;
  registry(): KeyEntry[];
  start(crashAt?: string): Promise<ServiceProcess>;
  stop(svc: ServiceProcess): Promise<void>;
  /**
   * Starts the service after a kill, checks through the API that exactly `expected` are listed
   * and each signs verifiably, stops it (exit 0), and checks at rest: registry settled, no temp
   * files, a blob file per key, (tpm store) a persistent object per key, nothing loaded.
   */
  recoverAndCheck(expected: string[]): Promise<{ handles: string[]; log: LogLine[] }>;
  close(): Promise<void>;
}

async function makeRig(bin: string, mode: KeyStoreKind): Promise<Rig> {
  const swtpm: SwtpmInstance = await startSwtpm();
  const dir = await mkdtemp(join(tmpdir(), 'svc-dev-'));
  const secret = generateSecret();
  const tenants = join(dir, 'tenants.json');
  await writeFile(tenants, JSON.stringify({ tenants: [{ id: 'app', secretHash: hashSecret(secret), maxKeys: 8 }] }));
  const stateDir = join(dir, 'state');
  const address = `unix:${join(dir, 'svc.sock')}`;
  const args = ['serve', '--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', address, '--tenants', tenants, '--state-dir', stateDir, '--key-store', mode, '--log-level', 'warn'];
  let client = new ServiceClient({ address, secret, timeoutMs: 10_000 });

  const registry = (): KeyEntry[] => readRegistryFile(stateDir);
  const start = async (crashAt?: string): Promise<ServiceProcess> => {
    client.close();
    client = new ServiceClient({ address, secret, timeoutMs: 10_000 });
    const p = spawnService(bin, args, crashAt ? { EVE_TPM_SERVICE_CRASH_AT: crashAt } : {});
    await waitHealthy(p, address);
    return p;
  };
  const stop = async (svc: ServiceProcess): Promise<void> => {
    svc.child.kill('SIGTERM');
    expect((await svc.exited).code, svc.stderr()).toBe(0);
  };

  return {
    get client() {
      return client;
    },
    stateDir,
    registry,
    start,
    stop,
    async recoverAndCheck(expected) {
      const svc = await start();
      const listed = (await client.listKeys()).map((k) => k.handle);
      expect(listed.sort(), 'keys listed after recovery').toEqual([...expected].sort());
      for (const h of listed) {
        const k = await client.getKey(h);
        await signsBoth(client, k);
      }
      await stop(svc);
      const log = svc
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine);
      const entries = registry();
      expect(entries.filter((e) => e.state !== 'committed'), 'unresolved registry entries').toEqual([]);
      const handles = entries.map((e) => hexHandle(e.handle)).sort();
      expect(handles).toEqual([...expected].sort());
      const temp = (d: string): string[] => readdirSync(d).filter((f) => f.includes('.tmp-'));
      expect([...temp(stateDir), ...temp(join(stateDir, 'keys'))], 'temp files left').toEqual([]);
      expect(readdirSync(join(stateDir, 'keys')).sort(), 'blob files').toEqual(handles.map((h) => `${h}.json`));
      const tpm = new Tpm(swtpm.transport());
      try {
        const persistent = (await listHandles(tpm, ...POOL)).map(hexHandle).sort();
        expect(persistent, 'persistent objects in the pool').toEqual(mode === 'tpm' ? handles : []);
        if (mode === 'tpm') for (const e of entries) expect(Buffer.from((await readPublic(tpm, e.handle)).name).toString('hex')).toBe(e.name);
        expect(await loadedHandles(tpm), 'left loaded in the TPM').toEqual({ transient: [], sessions: [] });
      } finally {
        await tpm.transport.close();
      }
      return { handles, log };
    },
    async close() {
      client.close();
      await killAll();
      await swtpm.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
