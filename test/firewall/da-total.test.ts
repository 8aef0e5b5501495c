/**
 * The total of all apps' authorization failures (attack 5, TBS's total threshold) on a fake
 * clock: the chip's figures set the total's limit (a reserve kept for EVE) and its decay; each
 * app's own limit and decay are never more lenient than the chip's; the kept sessions tell
 * their one listener of each change (the service records them for its next start). Counts and
 * order only.
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import type { Authorization } from '../../src/tpm/command.js';
import { AppState, Connection, DEFAULT_LIMITS, type AppLimits } from '../../src/firewall/app.js';
import { decide } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import { DaCount, DaTotal, UNKNOWN_CHIP_LIMIT, daReserve } from '../../src/firewall/limits.js';
import { appProperties } from '../../src/firewall/properties.js';
import { claimSessions, expireSessions, keepSessions, onKeptChange, releaseSessions, takeAllKept } from '../../src/firewall/kept-sessions.js';
import { forwarded, frame, loadObject, pw, rcOf, startSession } from './build.js';
import { errorFrame } from '../../src/firewall/refusal.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as never;
const NULL_TICKET = { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) };
const AUTH_FAIL_S1 = TPM_RC.AUTH_FAIL + 0x100;

function fakeClock(): { now: () => number; advance(ms: number): void } {
  let t = 5_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A chip response carrying only a response code. */
const answer = errorFrame;

let nextRange = 0x01006000;
/** An app of the total `total`, with a DA-protected key loaded, and its Sign. */
function member(name: string, total: DaTotal, now: () => number, limits: Partial<AppLimits> = {}) {
  const first = (nextRange += 0x100);
  const app = new AppState(name, { first, last: first + 0xff }, { ...DEFAULT_LIMITS, ...limits }, now, total);
  const conn = new Connection(app);
  const key = loadObject(conn, 0x80000100);
  const sign = (auth: Authorization = pw('wrong')) => decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET }, { keyHandle: auth }));
  /** A Sign the chip answers with AUTH_FAIL. */
  const fail = (): void => void finish(conn, forwarded(sign()).plan, answer(AUTH_FAIL_S1));
  return { app, conn, sign, fail };
}

describe('DaTotal: the chip’s figures', () => {
  it('the limit keeps a reserve of a quarter of the chip’s tries, at least 2', () => {
    expect([3, 6, 8, 10, 31, 32].map(daReserve)).toEqual([2, 2, 2, 3, 8, 8]);
    const clock = fakeClock();
    const total = new DaTotal(clock.now);
    expect(total.figures).toBeUndefined();
    expect(total.limit).toBe(UNKNOWN_CHIP_LIMIT);
    total.setChip({ maxAuthFail: 32, lockoutIntervalMs: 600_000, counter: 0 });
    expect(total.limit).toBe(24);
    total.setChip({ maxAuthFail: 3, lockoutIntervalMs: 1_000_000, counter: 0 });
    expect(total.limit).toBe(1);
    total.setChip({ maxAuthFail: 1, lockoutIntervalMs: 1_000_000, counter: 0 });
    expect(total.limit).toBe(0);
    expect(total.stopped()).toBe(true);
  });

  it('starts at the chip’s counter and forgets one failure per the chip’s interval, counted from the read', () => {
    const clock = fakeClock();
    const total = new DaTotal(clock.now);
    total.setChip({ maxAuthFail: 8, lockoutIntervalMs: 10 * MINUTE, counter: 5 });
    expect(total.failures()).toBe(5);
    total.fail();
    expect(total.stopped()).toBe(true); // 6 = 8 − 2
    clock.advance(10 * MINUTE - 1);
    expect(total.failures()).toBe(6);
    clock.advance(1);
    expect(total.failures()).toBe(5);
    expect(total.stopped()).toBe(false);
    clock.advance(50 * MINUTE);
    expect(total.failures()).toBe(0);
  });

  it('a chip with lockout interval 0 is not trusted to forget: the total stays until read again', () => {
    const clock = fakeClock();
    const total = new DaTotal(clock.now);
    total.setChip({ maxAuthFail: 10, lockoutIntervalMs: 0, counter: 2 });
    expect(total.recoveryMs).toBe(Infinity);
    clock.advance(1000 * HOUR);
    expect(total.failures()).toBe(2);
    total.fail();
    expect(total.failures()).toBe(3);
    total.setChip({ maxAuthFail: 10, lockoutIntervalMs: 0, counter: 0 });
    expect(total.failures()).toBe(0);
  });

  it('DaCount reads a changing recovery interval at each use', () => {
    const clock = fakeClock();
    let ms = 10 * MINUTE;
    const da = new DaCount(clock.now, () => ms);
    da.fail();
    ms = HOUR;
    clock.advance(30 * MINUTE);
    expect(da.failures()).toBe(1);
    clock.advance(30 * MINUTE);
    expect(da.failures()).toBe(0);
  });
});

describe('DA total across apps (attack 5)', () => {
  it('maxTries 8: two apps fail 3 times each → a third app’s authorization gets LOCKOUT from the firewall; the chip saw 6', () => {
    const clock = fakeClock();
    const total = new DaTotal(clock.now);
    total.setChip({ maxAuthFail: 8, lockoutIntervalMs: 1000_000, counter: 0 });
    const [a, b, c] = ['da-a', 'da-b', 'da-c'].map((n) => member(n, total, clock.now));
    for (const m of [a!, b!]) for (let i = 0; i < 3; i++) m.fail();
    expect([a!.app.daFailures, b!.app.daFailures, total.failures()]).toEqual([3, 3, 6]);
    // Neither app is at its own limit (4); all of them are stopped by the total.
    for (const m of [a!, b!, c!]) expect(rcOf(m.sign(pw()))).toBe(TPM_RC.LOCKOUT);
    expect(c!.app.daFailures).toBe(0);
    // Commands without object authorization go on.
    expect(forwarded(decide(c!.conn, frame(C.GetRandom, { bytesRequested: 8 }))).kind).toBe('forward');
    // The chip forgets one per its interval (1000 s): one try for someone again.
    clock.advance(1000_000);
    expect(total.failures()).toBe(5);
    c!.fail();
    expect(rcOf(a!.sign(pw()))).toBe(TPM_RC.LOCKOUT);
  });

  it('the app’s view: inLockout set when the total stops it; MAX_AUTH_FAIL and LOCKOUT_INTERVAL never more lenient than the chip', () => {
    const clock = fakeClock();
    const total = new DaTotal(clock.now);
    total.setChip({ maxAuthFail: 4, lockoutIntervalMs: 3 * HOUR, counter: 1 });
    const a = member('da-view', total, clock.now, { daRecoveryMs: 10 * MINUTE });
    const view = () => new Map(appProperties(a.conn, [0x200, 0x20e, 0x20f, 0x210].map((property) => ({ property, value: 0 }))).map((p) => [p.property, p.value]));
    expect(a.app.daLimit).toBe(2); // min(4, 4 − 2)
    expect(view().get(0x20f)).toBe(2);
    expect(view().get(0x210)).toBe(3 * 3600); // the chip's 3 hours, not the app's 10 minutes
    expect(Math.floor(view().get(0x200)! / 0x200) % 2).toBe(0);
    a.fail();
    expect(view().get(0x20e)).toBe(1);
    expect(Math.floor(view().get(0x200)! / 0x200) % 2).toBe(1); // 1 + 1 = the total's 2
    // The app's own count goes down at the chip's rate, not its 10 minutes.
    clock.advance(HOUR);
    expect(a.app.daFailures).toBe(1);
    clock.advance(2 * HOUR);
    expect(a.app.daFailures).toBe(0);
  });

  it('an app stopped at its own limit under a lenient chip; without a total, its own limits only', () => {
    const clock = fakeClock();
    const total = new DaTotal(clock.now);
    total.setChip({ maxAuthFail: 32, lockoutIntervalMs: 10 * MINUTE, counter: 0 });
    const a = member('da-own', total, clock.now);
    for (let i = 0; i < 4; i++) a.fail();
    expect(total.stopped()).toBe(false);
    expect(rcOf(a.sign(pw()))).toBe(TPM_RC.LOCKOUT);
    expect(a.app.da.recoveryMs).toBe(DEFAULT_LIMITS.daRecoveryMs); // 2 h ≥ the chip's 10 min
    const alone = new AppState('da-alone', { first: 0x01007f00, last: 0x01007fff }, DEFAULT_LIMITS, clock.now);
    expect([alone.daLimit, alone.da.recoveryMs]).toEqual([DEFAULT_LIMITS.daFailures, DEFAULT_LIMITS.daRecoveryMs]);
  });
});

describe('kept sessions tell their listener', () => {
  it('each change (kept, dropped, claimed, expired, released, taken) gives the handles kept now; no change, no call', () => {
    const clock = fakeClock();
    const seen: number[][] = [];
    onKeptChange((h) => seen.push(h));
    try {
      const app = new AppState('kept-listen', { first: 0x01008000, last: 0x010080ff }, { ...DEFAULT_LIMITS, sessions: 2, keptSessionIdleMs: 10 * MINUTE }, clock.now);
      const [c0, c1] = [new Connection(app), new Connection(app)];
      startSession(c0, 0x02000001);
      expect(keepSessions(c0, [0x02000001])).toEqual([]);
      for (const h of [0x02000002, 0x02000003]) startSession(c1, h);
      expect(keepSessions(c1, [0x02000002, 0x02000003])).toEqual([0x02000001]); // 2 per app: the oldest goes
      expect(seen).toEqual([[0x02000001], [0x02000002, 0x02000003]]);
      seen.shift();
      expect(keepSessions(c1, [0x02000002])).toEqual([]);
      expect(seen.length).toBe(1);
      const c2 = new Connection(app);
      startSession(c2, 0x02000002);
      claimSessions(c2);
      expect(seen.at(-1)).toEqual([0x02000003]);
      claimSessions(c2);
      expect(seen.length).toBe(2);
      clock.advance(10 * MINUTE);
      expect(expireSessions()).toEqual([0x02000003]);
      expect(seen.at(-1)).toEqual([]);
      expect(expireSessions()).toEqual([]);
      keepSessions(c2, [0x02000002]);
      expect(releaseSessions('kept-listen')).toEqual([0x02000002]);
      keepSessions(c2, [0x02000002]);
      expect(takeAllKept()).toEqual([0x02000002]);
      expect(seen.slice(3)).toEqual([[0x02000002], [], [0x02000002], []]);
      expect(takeAllKept()).toEqual([]);
      expect(seen.length).toBe(7);
    } finally {
      onKeptChange(undefined);
    }
  });
});
