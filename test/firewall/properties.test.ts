/**
 * What GetCapability(TPM_PROPERTIES) and ReadClock tell an app (properties.ts, read-clock.ts),
 * with frames the library marshals as the chip would: the counts are the app's own, in the
 * chip's order with its moreData; constants pass; ReadClock's boot counts are offset per app.
 */
import { describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalResponse, unmarshalResponse } from '../../src/tpm/command.js';
import { AppState, Connection } from '../../src/firewall/app.js';
import { NV_DefineSpace, NV_UndefineSpace } from '../../src/firewall/commands.js';
import { decide } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import { clockOffsets, setClockKey } from '../../src/firewall/read-clock.js';
import { forwarded, frame, loadObject, newConnection, NV_RANGE, pw, rcOf, startSession } from './build.js';

// The chip's answer: fixed constants first, then the variable group, as swtpm orders them.
const CHIP: Array<[number, number]> = [
  [0x100, 0x322e3000], // FAMILY_INDICATOR: passes
  [0x10e, 3], // HR_TRANSIENT_MIN: a constant, passes
  [0x11e, 1024], // MAX_COMMAND_SIZE, a TPM_PT_MAX_… constant: passes
  [0x200, 0x7], // PERMANENT: owner, endorsement and lockout auth set
  [0x201, 0x8000000f], // STARTUP_CLEAR: passes (orderly bit ≥ 2^31)
  [0x202, 19], // HR_NV_INDEX: EVE's and other apps' indices
  [0x203, 2],
  [0x204, 62],
  [0x205, 9],
  [0x206, 55],
  [0x207, 2],
  [0x208, 6],
  [0x209, 58],
  [0x20a, 3],
  [0x20b, 40],
  [0x20c, 0], // ALGORITHM_SET: passes
  [0x20e, 2], // LOCKOUT_COUNTER: the chip's
  [0x20f, 32],
  [0x210, 7200], // LOCKOUT_INTERVAL: the chip's
  [0x211, 86400], // LOCKOUT_RECOVERY: passes
  [0x213, 77], // AUDIT_COUNTER_0: passes
];

const getProps = (property = 0x100, propertyCount = 64) => frame(C.GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property, propertyCount });

/** GetCapability(TPM_PROPERTIES) through decide and finish, the chip answering `chip` with `moreData`. */
function properties(conn: Connection, chip = CHIP, moreData = false): Map<number, number> {
  const d = forwarded(decide(conn, getProps()));
  const resp = marshalResponse(C.GetCapability, { moreData, capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, data: chip.map(([property, value]) => ({ property, value })) } } as never);
  const out = unmarshalResponse(C.GetCapability, finish(conn, d.plan, resp)).output;
  expect(out.moreData).toBe(moreData);
  const data = (out.capabilityData as { capability: number; data: Array<{ property: number; value: number }> }).data;
  expect(data.map((p) => p.property)).toEqual(chip.map(([p]) => p)); // same properties, same order
  return new Map(data.map((p) => [p.property, p.value]));
}

const authFail = new Uint8Array([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x8e]); // TPM_RC_AUTH_FAIL + S1
const nvInfo = (nvIndex: number, attributes: number, dataSize: number) => ({ nvIndex, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: new Uint8Array(0), dataSize });
const PW_AREA = [{ nonceTPM: new Uint8Array(0), sessionAttributes: 0, hmac: new Uint8Array(0) }];

function defineNv(conn: Connection, nvIndex: number, attributes: number, dataSize: number): void {
  const d = forwarded(decide(conn, frame(NV_DefineSpace, { authHandle: TPM_RH.OWNER, auth: new Uint8Array(0), publicInfo: nvInfo(nvIndex, attributes, dataSize) }, { authHandle: pw() })));
  finish(conn, d.plan, marshalResponse(NV_DefineSpace, {} as never, PW_AREA));
}

describe('GetCapability(TPM_PROPERTIES): the app’s own counts', () => {
  it('a fresh app: nothing of its own, its quotas whole; constants and other properties pass', () => {
    const conn = newConnection();
    const { limits } = conn.app;
    const p = properties(conn, CHIP, true);
    expect(p.get(0x100)).toBe(0x322e3000);
    expect(p.get(0x10e)).toBe(3);
    expect(p.get(0x11e)).toBe(1024);
    expect(p.get(0x200)).toBe(0x4); // the app's owner/endorsement authorizations are empty; lockout's is the chip's
    expect(p.get(0x201)).toBe(0x8000000f);
    expect(p.get(0x202)).toBe(0);
    expect([p.get(0x203), p.get(0x204), p.get(0x205), p.get(0x206)]).toEqual([0, limits.sessions, 0, limits.sessions]);
    expect(p.get(0x207)).toBe(limits.transients);
    expect([p.get(0x208), p.get(0x209)]).toEqual([0, limits.persistents]);
    expect([p.get(0x20a), p.get(0x20b)]).toEqual([0, limits.nvIndices]);
    expect(p.get(0x20c)).toBe(0);
    expect([p.get(0x20e), p.get(0x20f)]).toEqual([0, limits.daFailures]);
    expect(p.get(0x210)).toBe(Math.ceil(limits.daRecoveryMs / 1000)); // the app's throttle, not the chip's 7200
    expect(p.get(0x211)).toBe(86400);
    expect(p.get(0x213)).toBe(77);
  });

  it('follows the connection’s objects and sessions, the app’s persistents, NV indices, counters and failures', () => {
    const app = new AppState('app-p', NV_RANGE);
    const conn = new Connection(app);
    const { limits } = app;
    loadObject(conn, 0x80000100);
    loadObject(conn, 0x80000101);
    startSession(conn, 0x02000010);
    app.persistents.set(0x81000100, undefined);
    defineNv(conn, 0x01001000, 0x00060006, 32); // ordinary
    defineNv(conn, 0x01001001, 0x00060016, 8); // TPM_NT_COUNTER
    const sign = forwarded(decide(conn, frame(C.GetRandom, { bytesRequested: 8 })));
    finish(conn, sign.plan, authFail);
    const p = properties(conn);
    expect(p.get(0x202)).toBe(2);
    expect([p.get(0x203), p.get(0x204), p.get(0x205), p.get(0x206)]).toEqual([1, limits.sessions - 1, 1, limits.sessions - 1]);
    expect(p.get(0x207)).toBe(limits.transients - 2);
    expect([p.get(0x208), p.get(0x209)]).toEqual([1, limits.persistents - 1]);
    expect([p.get(0x20a), p.get(0x20b)]).toEqual([1, limits.nvIndices - 2]);
    expect(p.get(0x20e)).toBe(1);
    expect(p.get(0x200)).toBe(0x4);

    // Another connection of the same app: its own objects and sessions, the app's shared records.
    const other = properties(new Connection(app));
    expect([other.get(0x203), other.get(0x207), other.get(0x208), other.get(0x20a), other.get(0x20e)]).toEqual([0, limits.transients, 1, 1, 1]);

    // The counter undefined: no longer counted; its handle defined again as an ordinary index: still not.
    const u = forwarded(decide(conn, frame(NV_UndefineSpace, { authHandle: TPM_RH.OWNER, nvIndex: 0x01001001 }, { authHandle: pw() })));
    finish(conn, u.plan, marshalResponse(NV_UndefineSpace, {} as never, PW_AREA));
    expect(properties(conn).get(0x20a)).toBe(0);
    defineNv(conn, 0x01001001, 0x00060006, 8);
    expect(properties(conn).get(0x20a)).toBe(0);
  });

  it('the app stopped by its own throttle: LOCKOUT_COUNTER at MAX_AUTH_FAIL and inLockout set', () => {
    const conn = newConnection();
    for (let i = 0; i < conn.app.limits.daFailures; i++) finish(conn, forwarded(decide(conn, frame(C.GetRandom, { bytesRequested: 8 }))).plan, authFail);
    const p = properties(conn);
    expect(p.get(0x20e)).toBe(conn.app.limits.daFailures);
    expect(p.get(0x20f)).toBe(conn.app.limits.daFailures);
    expect(p.get(0x200)).toBe(0x204);
  });

  it('a byte quota nearly spent leaves room for fewer counters than indices', () => {
    const conn = newConnection();
    defineNv(conn, 0x01001000, 0x00060006, conn.app.limits.nvBytes - 20);
    expect(properties(conn).get(0x20b)).toBe(2);
  });

  it('other capabilities pass byte for byte', () => {
    const conn = newConnection();
    const d = forwarded(decide(conn, frame(C.GetCapability, { capability: TPM_CAP.ALGS as never, property: 0, propertyCount: 8 })));
    const resp = marshalResponse(C.GetCapability, { moreData: true, capabilityData: { capability: TPM_CAP.ALGS, data: [{ alg: TPM_ALG.SHA256, algProperties: 4 }] } } as never);
    expect(Buffer.from(finish(conn, d.plan, resp))).toEqual(Buffer.from(resp));
  });
});

describe('ReadClock: boot counts offset per app', () => {
  const chipClock = (resetCount: number, restartCount: number) => ({ time: 123456n, clockInfo: { clock: 987654321n, resetCount, restartCount, safe: true } });
  const readClock = (conn: Connection, resetCount: number, restartCount: number) => {
    const d = forwarded(decide(conn, frame(C.ReadClock, {})));
    const out = finish(conn, d.plan, marshalResponse(C.ReadClock, { currentTime: chipClock(resetCount, restartCount) } as never));
    return unmarshalResponse(C.ReadClock, out).output.currentTime;
  };

  it('two apps see different counts for the same chip; each its own, stable, with true differences; clock, time and safe pass', () => {
    setClockKey(new Uint8Array(32).fill(7));
    const a = newConnection(new AppState('app-a', NV_RANGE));
    const b = newConnection(new AppState('app-b', { first: 0x01002000, last: 0x010020ff }));
    const a1 = readClock(a, 5, 2);
    const b1 = readClock(b, 5, 2);
    expect(a1.time).toBe(123456n);
    expect(a1.clockInfo.clock).toBe(987654321n);
    expect(a1.clockInfo.safe).toBe(true);
    expect(a1.clockInfo.resetCount).not.toBe(b1.clockInfo.resetCount);
    expect(a1.clockInfo.restartCount).not.toBe(b1.clockInfo.restartCount);
    const o = clockOffsets('app-a');
    expect(a1.clockInfo.resetCount).toBe((5 + o.reset) % 2 ** 32);
    expect(a1.clockInfo.restartCount).toBe((2 + o.restart) % 2 ** 32);
    // Another connection of the same app: the same counts. A reset: one more, modulo 2^32.
    expect(readClock(newConnection(new AppState('app-a', NV_RANGE)), 5, 2)).toEqual(a1);
    const a2 = readClock(a, 6, 0);
    expect((a2.clockInfo.resetCount - a1.clockInfo.resetCount + 2 ** 32) % 2 ** 32).toBe(1);
    expect(readClock(a, 2 ** 32 - 1, 2 ** 32 - 1).clockInfo.resetCount).toBe((2 ** 32 - 1 + o.reset) % 2 ** 32);
  });

  it('another key gives other offsets; ReadClock with a session is refused (its response is rewritten)', () => {
    setClockKey(new Uint8Array(32).fill(7));
    const before = clockOffsets('app-a');
    setClockKey(new Uint8Array(32).fill(8));
    expect(clockOffsets('app-a')).not.toEqual(before);
    const conn = newConnection();
    const audit = frame(C.ReadClock, {});
    // The same command with a one-entry password authorization area: TPM_ST_SESSIONS.
    const withArea = new Uint8Array(audit.length + 13);
    withArea.set(audit);
    const v = new DataView(withArea.buffer);
    v.setUint16(0, TPM_ST.SESSIONS);
    v.setUint32(2, withArea.length);
    v.setUint32(10, 9);
    v.setUint32(14, TPM_RH.RS_PW);
    expect(rcOf(decide(conn, withArea))).toBe(TPM_RC.AUTH_CONTEXT);
  });
});
