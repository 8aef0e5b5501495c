/**
 * Time budgets for RSA key generation (attack 10; src/service/raw/budgets.ts) on a fake clock
 * and injected TPM time (swtpm's keygen is fast): which frames count, one keygen per app in the
 * TPM queue at a time, a spent budget waits outside the queue while others' jobs run, and past
 * the wait bound TPM_RC_RETRY (a ServiceError the channel answers so). Order and counts only.
 */
import { describe, expect, it } from 'vitest';
import { TPM_RH } from '../../src/tpm/constants.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, passwordAuth } from '../../src/tpm/command.js';
import { akEccTemplate, akRsaTemplate } from '../../src/tpm/keys/templates.js';
import type { TpmRunner } from '../../src/tpm/index.js';
import { ServiceError } from '../../src/service/protocol/errors.js';
import { TpmQueue, type JobEvent } from '../../src/service/tpm/queue.js';
import { DEFAULT_KEYGEN, KeygenBudgets, isRsaKeygen, type BudgetTime } from '../../src/service/raw/budgets.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const creation = (inPublic: unknown) => ({ inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: inPublic as never, outsideInfo: new Uint8Array(0), creationPCR: [] });
const RSA_CREATE = marshalCommand(C.Create, { parentHandle: 0x80000000, ...creation(akRsaTemplate()) }, { parentHandle: passwordAuth(new TextEncoder().encode('parent')) });
const RSA_PRIMARY = marshalCommand(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, ...creation(akRsaTemplate()) }, { primaryHandle: passwordAuth() });
const ECC_PRIMARY = marshalCommand(C.CreatePrimary, { primaryHandle: TPM_RH.OWNER, ...creation(akEccTemplate()) }, { primaryHandle: passwordAuth() });
const GET_RANDOM = marshalCommand(C.GetRandom, { bytesRequested: 8 });

/** TPM2_CreateLoaded (no descriptor in the library): parent, a password, an empty inSensitive, a TPM2B_TEMPLATE of `type`. */
function createLoaded(type: number): Uint8Array {
  const b = Buffer.alloc(10 + 4 + 4 + 9 + 4 + 4);
  b.writeUInt16BE(0x8002, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(0x191, 6);
  b.writeUInt32BE(0x80000000, 10);
  b.writeUInt32BE(9, 14); // authorization area: TPM_RS_PW, no nonce, attributes 0, no password
  b.writeUInt32BE(TPM_RH.RS_PW, 18);
  let at = 27;
  b.writeUInt16BE(0, at); // inSensitive
  b.writeUInt16BE(2, (at += 2)); // inPublic (TPM2B_TEMPLATE): just a type here
  b.writeUInt16BE(type, at + 2);
  return new Uint8Array(b);
}

/** Fake time: `now` moved by the test or by the jobs' TPM time; waits resolve when time reaches them. */
function fakeTime(): BudgetTime & { advance(ms: number): void; waiting(): number[] } {
  let t = 0;
  const waits: Array<{ at: number; resolve: () => void }> = [];
  return {
    now: () => t,
    wait: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        waits.push({ at: t + ms, resolve });
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      }),
    advance(ms) {
      t += ms;
      for (const w of waits.filter((x) => x.at <= t)) {
        waits.splice(waits.indexOf(w), 1);
        w.resolve();
      }
    },
    waiting: () => waits.map((w) => w.at - t),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('RSA key generation budgets', () => {
  it('counts Create, CreatePrimary and CreateLoaded with an RSA template; not ECC, not other commands, not broken frames', () => {
    expect([RSA_CREATE, RSA_PRIMARY, createLoaded(0x0001)].map(isRsaKeygen)).toEqual([true, true, true]);
    expect([ECC_PRIMARY, createLoaded(0x0023), GET_RANDOM, RSA_PRIMARY.subarray(0, 30), RSA_PRIMARY.subarray(0, 16), new Uint8Array(3)].map(isRsaKeygen)).toEqual([false, false, false, false, false, false]);
    const load = marshalCommand(C.Load, { parentHandle: 0x80000000, inPrivate: new Uint8Array(4), inPublic: akRsaTemplate() as never }, { parentHandle: passwordAuth() });
    expect(isRsaKeygen(load)).toBe(false);
  });

  it('one keygen per app in the TPM queue; over budget it waits outside the queue while others run; past the bound TPM_RC_RETRY', async () => {
    const time = fakeTime();
    const budgets = new KeygenBudgets({ budgetMs: 60 * SECOND, windowMs: 10 * MINUTE, maxWaitMs: 5 * MINUTE }, time);
    const queue = new TpmQueue({} as TpmRunner, { capacity: 16, perTenant: 8 });
    const log: string[] = [];
    const events: string[] = [];
    queue.events.on('start', (e: JobEvent) => log.push(`start ${e.label}`));
    for (const ev of ['enqueue', 'done']) queue.events.on(ev, (e: JobEvent) => events.push(`${ev} ${e.label}`));
    const signal = new AbortController().signal;
    /** One command of `app` through the budgets and the queue, taking `cost` ms of (fake) TPM time. */
    const send = (app: string, label: string, frame: Uint8Array, cost: number): Promise<string> =>
      budgets
        .run(app, frame, signal, (timed) =>
          queue.submit(app, label, () =>
            timed(async () => {
              time.advance(cost);
              return label;
            }),
          ),
        )
        .catch((e: unknown) => (e instanceof ServiceError ? `${label}: RETRY` : `${label}: ${String(e)}`));

    // Two keygens of app A at once (two connections): the second enters the queue only after the first ran.
    const a1 = send('A', 'A-rsa-1', RSA_PRIMARY, 45 * SECOND);
    const a2 = send('A', 'A-rsa-2', RSA_CREATE, 45 * SECOND);
    const b1 = send('B', 'B-random', GET_RANDOM, 1);
    expect(await Promise.all([a1, b1])).toEqual(['A-rsa-1', 'B-random']);
    // A's budget: 60 s - 45 s = 15 s left, so A-rsa-2 ran too (4.5 s came back while it ran: -25.5 s).
    expect(await a2).toBe('A-rsa-2');
    expect(log).toEqual(['start B-random', 'start A-rsa-1', 'start A-rsa-2']);
    expect(events.filter((e) => e.includes('A-rsa'))).toEqual(['enqueue A-rsa-1', 'done A-rsa-1', 'enqueue A-rsa-2', 'done A-rsa-2']);
    expect(budgets.left('A')).toBe(-25.5 * SECOND);

    // A's next keygen waits for its budget (25.5 s of debt + 1 ms, back at 0.1 ms per ms: 255 s), outside the queue.
    const a3 = send('A', 'A-rsa-3', RSA_CREATE, 10 * SECOND);
    await tick();
    expect(time.waiting()).toEqual([255_010]);
    expect(queue.depth).toBe(0);
    // Meanwhile A's other commands and B's keygens run at once.
    expect(await send('A', 'A-random', GET_RANDOM, 1)).toBe('A-random');
    expect(await send('B', 'B-rsa', RSA_PRIMARY, 20 * SECOND)).toBe('B-rsa');
    // A fourth keygen of A waits behind the third: its wait is decided after A-rsa-3 ran.
    const a4 = send('A', 'A-rsa-4', RSA_PRIMARY, 10 * SECOND);
    await tick();
    expect(time.waiting()).toHaveLength(1);
    time.advance(time.waiting()[0]! - 1);
    await tick();
    expect(log).toHaveLength(5); // 1 ms short: still waiting
    time.advance(1);
    expect(await a3).toBe('A-rsa-3');
    // A-rsa-3 left A about 9 s in debt (a wait of about 90 s, within the 5 minutes), so A-rsa-4 waits again, then runs.
    await tick();
    expect(time.waiting()).toEqual([90_000]);
    time.advance(90_000);
    expect(await a4).toBe('A-rsa-4');
    expect(log.slice(3)).toEqual(['start A-random', 'start B-rsa', 'start A-rsa-3', 'start A-rsa-4']);

    // Twelve minutes later the budget is whole again (9 s of debt, then 60 s). A keygen that burns two budgets' worth: the next one would wait
    // past the bound (600 s > 5 minutes) → RETRY at once, never queued.
    time.advance(12 * MINUTE);
    expect(budgets.left('A')).toBe(60 * SECOND);
    expect(await send('A', 'A-rsa-5', RSA_PRIMARY, 120 * SECOND)).toBe('A-rsa-5');
    const refused = await Promise.all([send('A', 'A-rsa-6', RSA_PRIMARY, 1), send('A', 'A-rsa-7', RSA_CREATE, 1)]);
    expect(refused).toEqual(['A-rsa-6: RETRY', 'A-rsa-7: RETRY']);
    expect(log.filter((l) => l.startsWith('start A-rsa'))).toHaveLength(5);
    expect(await send('A', 'A-ecc', ECC_PRIMARY, 1)).toBe('A-ecc');
  }, 10_000);

  it('a keygen waiting for its budget is withdrawn when the connection closes', async () => {
    const time = fakeTime();
    const budgets = new KeygenBudgets(DEFAULT_KEYGEN, time);
    const stop = new AbortController();
    let ran = 0;
    const run = () => budgets.run('C', RSA_PRIMARY, stop.signal, (timed) => timed(async () => void ran++));
    await run();
    // Spend the budget (60 s of TPM time in one run), then the next waits.
    await budgets.run('C', RSA_PRIMARY, stop.signal, (timed) => timed(async () => time.advance(61 * SECOND)));
    const waiting = run();
    await tick();
    expect(time.waiting()).toHaveLength(1);
    stop.abort(new Error('closed'));
    await expect(waiting).rejects.toThrow('closed');
    expect(ran).toBe(1);
    expect(DEFAULT_KEYGEN).toEqual({ budgetMs: 60 * SECOND, windowMs: 10 * MINUTE, maxWaitMs: 60 * SECOND });
  });
});
