/**
 * Kept sessions across a service restart, against a real service on swtpm: a session an app
 * saved itself is kept past its connection and recorded in `<state>/raw/kept-sessions.json`;
 * a new service (its memory empty, as a new process's) flushes it from the file before any
 * app command, and the app's saved context no longer loads. Order and counts only.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import { TPM_RC, TpmError } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { Tpm, type TpmRunner } from '../../src/tpm/index.js';
import { onKeptChange, takeAllKept } from '../../src/firewall/kept-sessions.js';
import { KEPT_FILE } from '../../src/service/raw/kept-file.js';
import { RawClient } from '../../src/service/client/raw-client.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { eventually, startEnv, type TestEnv } from '../service/env.js';
import { rawSettled } from './helpers.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable(), 'swtpm'))('kept sessions across a service restart (swtpm)', () => {
  let env: TestEnv;
  const clients: RawClient[] = [];
  const file = () => join(env.stateDir, 'raw', KEPT_FILE);
  const recorded = async (): Promise<number[] | undefined> => {
    try {
      return (JSON.parse(await readFile(file(), 'utf8')) as { sessions: number[] }).sessions;
    } catch {
      return undefined;
    }
  };
  /** Session handles the chip holds (loaded and saved), read outside the firewall. */
  const chipSessions = () =>
    env.onTpm(async (t: TpmRunner) => {
      const out: number[] = [];
      for (const property of [0x02000000, 0x03000000]) out.push(...((await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES, property, propertyCount: 64 })).capabilityData.data as number[]));
      return out;
    });
  const app = async (tenant: string): Promise<Tpm> => {
    const client = await RawClient.open(env.unix, env.secrets[tenant]);
    clients.push(client);
    return new Tpm({ description: `raw:${tenant}`, send: (f) => client.transact(f), close: () => Promise.resolve(client.close()) });
  };
  const closeAll = async (): Promise<void> => {
    for (const c of clients.splice(0)) c.close();
    await rawSettled(env);
  };

  beforeAll(async () => {
    env = await startEnv();
  }, 180_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await env?.stop();
  });

  it('a kept session is recorded, and flushed from the record by the next start; its context no longer loads', async () => {
    const before = await chipSessions();
    const alice = await app('alice');
    const { sessionHandle } = await alice.run(C.StartAuthSession, {
      tpmKey: TPM_RH.NULL,
      bind: TPM_RH.NULL,
      nonceCaller: new Uint8Array(16),
      encryptedSalt: new Uint8Array(0),
      sessionType: 0, // HMAC: the chip lists its saved sessions by their own handle type
      symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
      authHash: TPM_ALG.SHA256,
    } as never);
    const { context } = await alice.run(C.ContextSave, { saveHandle: sessionHandle });
    await closeAll();
    // Kept past the connection (the app saved it), on the chip and in the record.
    await eventually(async () => (await recorded())?.includes(sessionHandle) === true, 30_000, 'the kept session recorded');
    expect(await chipSessions()).toEqual([...before, sessionHandle]);

    // A new process remembers nothing: only the file tells it.
    onKeptChange(undefined);
    expect(takeAllKept()).toEqual([sessionHandle]);
    await env.restartService();
    await eventually(() => env.logs.some((l) => l.event === 'raw-kept-restart'), 30_000, 'the previous run’s sessions flushed');
    expect(env.logs.filter((l) => l.event === 'raw-kept-restart').map((l) => l.sessions)).toEqual([1]);
    expect(await chipSessions()).toEqual(before);
    await eventually(async () => (await recorded())?.length === 0, 30_000, 'the record emptied');

    // The app's saved context is of a run that is over: refused (the new run never saw it saved).
    const again = await app('alice');
    const rc = await again.run(C.ContextLoad, { context }).then(
      () => TPM_RC.SUCCESS,
      (e: unknown) => (e as TpmError).rc,
    );
    expect(rc).not.toBe(TPM_RC.SUCCESS);
    await closeAll();

    // A start with nothing recorded flushes nothing.
    await env.restartService();
    await env.onTpm(async () => {});
    expect(env.logs.filter((l) => l.event === 'raw-kept-restart').length).toBe(1);
  });

  it('a damaged record is logged and skipped; the service starts and the apps’ state files are unaffected', async () => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file(), '{"sessions": "no"', { mode: 0o600 });
    await env.restartService();
    expect(env.logs.filter((l) => l.event === 'raw-state-bad').map((l) => l.file)).toEqual([file()]);
    const alice = await app('alice');
    expect((await alice.run(C.GetRandom, { bytesRequested: 4 })).randomBytes.length).toBe(4);
    await closeAll();
  });
});
