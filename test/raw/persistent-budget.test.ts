/**
 * An app's RSA persistent handle made again from its recipe is an RSA key generation charged to
 * the app's budget (src/service/raw/budgets.ts, persistents.ts): the raw space on swtpm, driven
 * as the channel drives it, with an injected budget whose clock moves only by the TPM time each
 * CreatePrimary is given at the transport. Foreseen re-makes (no saved context) wait for the
 * budget or are refused; a saved context costs nothing; after a TPM Reset the re-make is charged.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_RH } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, passwordAuth, unmarshalResponse } from '../../src/tpm/command.js';
import { Tpm } from '../../src/tpm/index.js';
import { COMMANDS } from '../../src/tpm/entries/wire.js';
import { akRsaTemplate } from '../../src/tpm/keys/templates.js';
import { TpmQueue } from '../../src/service/tpm/queue.js';
import { ServiceError } from '../../src/service/protocol/errors.js';
import { KeygenBudgets, type BudgetTime } from '../../src/service/raw/budgets.js';
import { RawApp, RawApps } from '../../src/service/raw/apps.js';
import { RawSpace } from '../../src/service/raw/space.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const RECORD = 'legacy:budget-app';
const HANDLE = 0x81000100;
const rcOf = (r: Uint8Array): number => new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(6);

describe('re-makes in the keygen budget (no TPM)', () => {
  it('an RSA Create that also re-makes its RSA parent is measured once; a re-make alone is charged by itself', async () => {
    let t = 0;
    const budgets = new KeygenBudgets({ budgetMs: MINUTE, windowMs: 10 * MINUTE, maxWaitMs: MINUTE }, { now: () => t, wait: () => Promise.resolve() });
    const signal = new AbortController().signal;
    const rsaCreate = marshalCommand(
      C.Create,
      { parentHandle: HANDLE, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: akRsaTemplate() as never, outsideInfo: new Uint8Array(0), creationPCR: [] },
      { parentHandle: passwordAuth() },
    );
    // 2 s of re-make inside 5 s of command: 5 s charged (0.5 s back meanwhile from a full budget: capped).
    await budgets.run(RECORD, rsaCreate, signal, (timed, remakes) => timed(async () => {
      await remakes(async () => void (t += 2 * SECOND));
      t += 3 * SECOND;
    }), true);
    expect(budgets.left(RECORD)).toBe(55 * SECOND);
    // A ReadPublic whose re-make was not foreseen: only the re-make's 2 s (0.3 s came back since).
    await budgets.run(RECORD, marshalCommand(C.ReadPublic, { objectHandle: HANDLE }), signal, (timed, remakes) => timed(async () => {
      t += 1 * SECOND;
      await remakes(async () => void (t += 2 * SECOND));
    }));
    expect(budgets.left(RECORD)).toBe(53.3 * SECOND);
  });
});

describe.skipIf(!swtpmAvailable())('RSA persistent handles made again are charged to the keygen budget (swtpm)', () => {
  let sw: SwtpmInstance;
  let tpm: Tpm;
  let queue: TpmQueue;
  /** The budgets' clock: moved only by CreatePrimary frames reaching the chip, `cost` ms each. */
  let t = 0;
  let cost = 5 * SECOND;
  const sent: string[] = [];
  const time: BudgetTime = { now: () => t, wait: () => Promise.reject(new Error('no waiting in this test')) };
  // 60 s per 10 minutes: 10 ms of time gives 1 ms of budget back.
  const budgets = new KeygenBudgets({ budgetMs: MINUTE, windowMs: 10 * MINUTE, maxWaitMs: MINUTE }, time);
  const log = pino({ level: 'silent' });
  const spaces: RawSpace[] = [];

  const spaceOf = (raw: RawApp): RawSpace => {
    const s = new RawSpace(raw.state, { chip: tpm, transport: tpm.transport, transients: queue.transients, log, raw }, { record: RECORD });
    spaces.push(s);
    return s;
  };
  /** One app command as the channel runs it (channel.ts): through the budgets, then the queue. */
  const send = (space: RawSpace, frame: Uint8Array): Promise<Uint8Array> =>
    budgets.run(RECORD, frame, new AbortController().signal, (timed, remakes) => queue.submit('app', 'raw', (job) => timed(() => space.command(job, frame, remakes))), space.remakesRsa(frame));
  /** The commands the chip sees while `fn` runs. */
  const seen = async (fn: () => Promise<unknown>): Promise<string[]> => {
    const from = sent.length;
    await fn();
    return sent.slice(from);
  };
  const createRsaPrimary = marshalCommand(
    C.CreatePrimary,
    { primaryHandle: TPM_RH.OWNER, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: akRsaTemplate() as never, outsideInfo: new Uint8Array(0), creationPCR: [] },
    { primaryHandle: passwordAuth() },
  );
  const readPublic = marshalCommand(C.ReadPublic, { objectHandle: HANDLE });
  const nameIn = (r: Uint8Array): string => Buffer.from(unmarshalResponse(C.ReadPublic, r).output.name).toString('hex');

  beforeAll(async () => {
    sw = await startSwtpm();
    const transport = sw.transport();
    const raw = transport.send.bind(transport);
    transport.send = (frame: Uint8Array) => {
      const code = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(6);
      sent.push(COMMANDS.get(code)?.name ?? `0x${code.toString(16)}`);
      if (code === C.CreatePrimary.code) t += cost;
      return raw(frame);
    };
    tpm = new Tpm(transport);
    queue = new TpmQueue(tpm, { capacity: 8, perTenant: 8 });
  }, 60_000);
  afterAll(async () => {
    for (const s of spaces) await queue.submit('app', 'close', () => s.close()).catch(() => undefined);
    await sw?.stop();
  });

  it('charged: the app’s own RSA primary, its first re-make, the re-make after a TPM Reset; not a saved context’s load', async () => {
    const apps = new RawApps();
    const raw = apps.app(RECORD);
    const space = spaceOf(raw);
    // The app's own RSA CreatePrimary: 5 s of TPM time from a full budget.
    const created = await send(space, createRsaPrimary);
    expect(rcOf(created)).toBe(TPM_RC.SUCCESS);
    expect(budgets.left(RECORD)).toBe(55 * SECOND);
    const virtual = unmarshalResponse(C.CreatePrimary, created, 1).output.objectHandle;
    const evict = marshalCommand(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: virtual, persistentHandle: HANDLE }, { auth: passwordAuth() });
    expect(rcOf(await send(space, evict))).toBe(TPM_RC.SUCCESS);
    expect(space.remakesRsa(readPublic)).toBe(true);

    // First use by the handle: made from the recipe (5 s charged, 0.5 s came back meanwhile), its context saved.
    let first!: Uint8Array;
    expect(await seen(async () => (first = await send(space, readPublic)))).toEqual(['CreatePrimary', 'ContextSave', 'ReadPublic', 'FlushContext']);
    expect(rcOf(first)).toBe(TPM_RC.SUCCESS);
    expect(budgets.left(RECORD)).toBe(50.5 * SECOND);
    const name = nameIn(first);

    // Later uses load the saved context: no keygen, nothing charged.
    expect(space.remakesRsa(readPublic)).toBe(false);
    let again!: Uint8Array;
    expect(await seen(async () => (again = await send(space, readPublic)))).toEqual(['ContextLoad', 'ReadPublic', 'FlushContext']);
    expect(nameIn(again)).toBe(name);
    expect(budgets.left(RECORD)).toBe(50.5 * SECOND);

    // TPM Reset: the context no longer loads; the recipe makes the same key, charged though not foreseen.
    await sw.restart();
    await queue.submit('app', 'reconnect', (job) => job.run(C.GetRandom, { bytesRequested: 1 })).catch(() => undefined);
    let reset!: Uint8Array;
    const after = await seen(async () => (reset = await send(space, readPublic)));
    expect(after).toEqual(['ContextLoad', 'CreatePrimary', 'ContextSave', 'ReadPublic', 'FlushContext']);
    expect(nameIn(reset)).toBe(name);
    expect(budgets.left(RECORD)).toBe(46 * SECOND);
    expect(await seen(() => send(space, readPublic))).toEqual(['ContextLoad', 'ReadPublic', 'FlushContext']);
  });

  it('a spent budget: a foreseen re-make is refused (TPM_RC_RETRY in the channel) before it reaches the TPM', async () => {
    // The app spends its budget and more: 3 minutes of TPM time for one key (a wait of 30 minutes for the next).
    cost = 3 * MINUTE;
    const apps = new RawApps();
    const space = spaceOf(apps.app(RECORD));
    const created = await send(space, createRsaPrimary);
    expect(rcOf(created)).toBe(TPM_RC.SUCCESS);
    const virtual = unmarshalResponse(C.CreatePrimary, created, 1).output.objectHandle;
    const evict = marshalCommand(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: virtual, persistentHandle: HANDLE }, { auth: passwordAuth() });
    expect(rcOf(await send(space, evict))).toBe(TPM_RC.SUCCESS);
    expect(budgets.left(RECORD)).toBeLessThan(-MINUTE);
    const before = sent.length;
    await expect(send(space, readPublic)).rejects.toBeInstanceOf(ServiceError);
    expect(sent.length).toBe(before);
    // Commands that make no RSA key go on.
    expect(rcOf(await send(space, marshalCommand(C.GetRandom, { bytesRequested: 4 })))).toBe(TPM_RC.SUCCESS);
  });
});
