/**
 * The firewall's limits over time, on a fake clock (no sleeping): the NV write rate (attack 9),
 * the DA throttle forgetting one failure per recovery interval (attack 5), and the idle limit
 * of kept sessions (attack 8). Counts and order only.
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalResponse, type Authorization } from '../../src/tpm/command.js';
import { AppState, Connection, DEFAULT_LIMITS, type AppLimits } from '../../src/firewall/app.js';
import { decide } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import { DaCount, TokenBucket } from '../../src/firewall/limits.js';
import { claimSessions, expireSessions, keepSessions, nextExpiry } from '../../src/firewall/kept-sessions.js';
import { NV_DefineSpace, NV_UndefineSpace, NV_Write } from '../../src/firewall/commands.js';
import { forwarded, frame, loadObject, pw, rcOf } from './build.js';
import { errorFrame } from '../../src/firewall/refusal.js';

const MINUTE = 60_000;
const PW_AREA = [{ nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }];
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as never;
const NULL_TICKET = { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) };
/** A chip response carrying only a response code. */
const answer = errorFrame;

/** A fake clock: `t` ms, moved by the test. */
function fakeClock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

let nextRange = 0x01003000;
function app(limits: Partial<AppLimits>, now: () => number, name = 'limits-app'): AppState {
  const first = (nextRange += 0x100);
  return new AppState(name, { first, last: first + 0xff }, { ...DEFAULT_LIMITS, ...limits }, now);
}

describe('TokenBucket and DaCount', () => {
  it('a bucket refills one token per interval up to its capacity, and may go into debt', () => {
    const clock = fakeClock();
    const b = new TokenBucket(clock.now, 3, 1000);
    b.take(3);
    expect(b.level()).toBe(0);
    expect(b.waitFor(1)).toBe(1000);
    clock.advance(2500);
    expect(b.level()).toBe(2.5);
    clock.advance(10_000);
    expect(b.level()).toBe(3);
    b.take(5);
    expect(b.level()).toBe(-2);
    expect(b.waitFor(1)).toBe(3000);
  });

  it('DaCount forgets one failure per recovery interval; new failures do not restart a running interval', () => {
    const clock = fakeClock();
    const da = new DaCount(clock.now, 10 * MINUTE);
    da.fail();
    clock.advance(6 * MINUTE);
    da.fail();
    expect(da.failures()).toBe(2);
    clock.advance(4 * MINUTE); // 10 minutes since the first: one forgotten
    expect(da.failures()).toBe(1);
    clock.advance(10 * MINUTE);
    expect(da.failures()).toBe(0);
    clock.advance(100 * MINUTE);
    expect(da.failures()).toBe(0);
    da.fail(); // counting again starts a fresh interval
    clock.advance(10 * MINUTE - 1);
    expect(da.failures()).toBe(1);
    clock.advance(1);
    expect(da.failures()).toBe(0);
  });
});

describe('NV write rate per app (attack 9)', () => {
  const setUp = () => {
    const clock = fakeClock();
    const conn = new Connection(app({ nvWriteBurst: 3, nvWriteIntervalMs: MINUTE }, clock.now));
    const index = conn.app.nvRange.first;
    const info = { nvIndex: index, nameAlg: TPM_ALG.SHA256, attributes: 0x00060006, authPolicy: new Uint8Array(0), dataSize: 32 };
    const define = () => decide(conn, frame(NV_DefineSpace, { authHandle: TPM_RH.OWNER, auth: new Uint8Array(0), publicInfo: info }, { authHandle: pw() }));
    const write = () => decide(conn, frame(NV_Write, { authHandle: index, nvIndex: index, data: new Uint8Array(4), offset: 0 }, { authHandle: pw() }));
    const undefine = () => decide(conn, frame(NV_UndefineSpace, { authHandle: TPM_RH.OWNER, nvIndex: index }, { authHandle: pw() }));
    const read = () => decide(conn, frame(C.NV_Read, { authHandle: index, nvIndex: index, size: 4, offset: 0 }, { authHandle: pw() }));
    const ok = (d: ReturnType<typeof decide>, cmd: typeof NV_Write | typeof NV_DefineSpace | typeof NV_UndefineSpace) => finish(conn, forwarded(d).plan, marshalResponse(cmd, {} as never, PW_AREA));
    return { clock, conn, define, write, undefine, read, ok };
  };

  it('a burst, then TPM_RC_NV_RATE before the chip is asked; one more write per interval', () => {
    const { clock, conn, define, write, undefine, read, ok } = setUp();
    ok(define(), NV_DefineSpace); // DefineSpace writes NV too
    ok(write(), NV_Write);
    ok(write(), NV_Write);
    const refused = write();
    expect(rcOf(refused)).toBe(TPM_RC.NV_RATE);
    expect(rcOf(undefine())).toBe(TPM_RC.NV_RATE);
    // Reads are not writes.
    forwarded(read());
    clock.advance(MINUTE);
    ok(write(), NV_Write);
    expect(rcOf(write())).toBe(TPM_RC.NV_RATE);
    clock.advance(MINUTE);
    ok(undefine(), NV_UndefineSpace);
    expect(conn.app.nv.size).toBe(0);
    expect(rcOf(define())).toBe(TPM_RC.NV_RATE);
  });

  it('a write the chip refused took no token; a long pause refills the burst, not more', () => {
    const { clock, conn, write, ok } = setUp();
    for (let i = 0; i < 5; i++) {
      const d = forwarded(write());
      expect(Array.from(finish(conn, d.plan, answer(TPM_RC.NV_LOCKED)).subarray(6))).toEqual([0, 0, 0x01, 0x48]);
    }
    expect(conn.app.nvWrites.level()).toBe(3);
    ok(write(), NV_Write);
    clock.advance(60 * MINUTE);
    const outcomes = Array.from({ length: 5 }, () => {
      const d = write();
      if (d.kind !== 'forward') return d.kind === 'reply' ? d.rc : -1;
      finish(conn, d.plan, marshalResponse(NV_Write, {} as never, PW_AREA));
      return 0;
    });
    expect(outcomes).toEqual([0, 0, 0, TPM_RC.NV_RATE, TPM_RC.NV_RATE]);
  });

  it('the default: a burst of 64 writes, then one per 10 minutes', () => {
    expect([DEFAULT_LIMITS.nvWriteBurst, DEFAULT_LIMITS.nvWriteIntervalMs]).toEqual([64, 10 * MINUTE]);
  });
});

describe('DA throttle decay (attack 5)', () => {
  it('4 failures → LOCKOUT; one recovery interval later one more try; failures keep counting', () => {
    const clock = fakeClock();
    const conn = new Connection(app({}, clock.now));
    const key = loadObject(conn, 0x80000100);
    const sign = (auth: Authorization = pw('wrong')) => decide(conn, frame(C.Sign, { keyHandle: key, digest: new Uint8Array(32), inScheme: NULL_SCHEME, validation: NULL_TICKET }, { keyHandle: auth }));
    const AUTH_FAIL_S1 = TPM_RC.AUTH_FAIL + 0x100;
    const fail = () => finish(conn, forwarded(sign()).plan, answer(AUTH_FAIL_S1));
    for (let i = 0; i < 4; i++) fail();
    expect(conn.app.daFailures).toBe(4);
    expect(rcOf(sign())).toBe(TPM_RC.LOCKOUT);
    clock.advance(DEFAULT_LIMITS.daRecoveryMs - 1);
    expect(rcOf(sign())).toBe(TPM_RC.LOCKOUT);
    clock.advance(1);
    expect(conn.app.daFailures).toBe(3);
    fail(); // the one more try, wrong again
    expect(conn.app.daFailures).toBe(4);
    expect(rcOf(sign(pw()))).toBe(TPM_RC.LOCKOUT);
    // Four intervals later all are forgotten, and counting starts over.
    clock.advance(4 * DEFAULT_LIMITS.daRecoveryMs);
    expect(conn.app.daFailures).toBe(0);
    forwarded(sign(pw()));
    fail();
    expect(conn.app.daFailures).toBe(1);
  });

  it('the default: one failure forgotten per 2 hours (never faster than the chip forgets)', () => {
    expect(DEFAULT_LIMITS.daRecoveryMs).toBe(120 * MINUTE);
  });
});

describe('kept sessions: the idle limit (attack 8)', () => {
  it('a kept session unused for the idle limit expires; one loaded again is the connection’s, not expired', () => {
    const clock = fakeClock();
    const a = app({ keptSessionIdleMs: 10 * MINUTE }, clock.now, 'idle-a');
    expect(expireSessions()).toEqual([]);
    expect(keepSessions(new Connection(a), [0x02000a01, 0x02000a02])).toEqual([]);
    expect(nextExpiry()).toBe(10 * MINUTE);
    clock.advance(5 * MINUTE);
    expect(expireSessions()).toEqual([]);
    // A connection loads 0x02000a01 again (its own now), saves it and closes: kept anew, from now.
    const c = new Connection(a);
    c.sessions.add(0x02000a01);
    claimSessions(c);
    expect(nextExpiry()).toBe(5 * MINUTE);
    expect(keepSessions(c, [0x02000a01])).toEqual([]);
    clock.advance(5 * MINUTE);
    expect(expireSessions()).toEqual([0x02000a02]);
    expect(nextExpiry()).toBe(5 * MINUTE);
    clock.advance(5 * MINUTE - 1);
    expect(expireSessions()).toEqual([]);
    clock.advance(1);
    expect(expireSessions()).toEqual([0x02000a01]);
    expect(nextExpiry()).toBeUndefined();
  });
});
