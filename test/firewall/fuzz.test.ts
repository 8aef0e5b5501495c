/**
 * Random and mutated frames through the firewall (bounded: a few seconds). For any bytes the
 * decision core never throws and always decides; a forwarded frame decodes strictly and names
 * only the app's real handles — in the handle area, the authorization area and FlushContext's
 * parameter; an error reply is a bare 10-byte TPM response.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TPM_RH } from '../../src/tpm/constants.js';
import { unmarshalCommand } from '../../src/tpm/command.js';
import { decide } from '../../src/firewall/decide.js';
import { APP_PERSISTENT, AppState, DEFAULT_LIMITS, EVE_PERSISTENT, inRange, type Connection } from '../../src/firewall/app.js';
import { RULES } from '../../src/firewall/rules.js';
import { loadVectors } from '../helpers/vectors.js';
import { runs } from '../fuzz/arbitraries.js';
import { newConnection, NV_RANGE } from './build.js';

const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
type V = { vectors: { command: string }[] };
const seeds = [...loadVectors<V>('tpm2-tss-swtpm.json').vectors, ...loadVectors<V>('tpm2-tss-swtpm-attest.json').vectors].map((v) => unhex(v.command));
const codes = [...RULES.keys(), 0x131, 0x120];

/** App handles are virtual; the real ones are far from them, so a leak is visible. */
function connection(): Connection {
  const conn = newConnection(new AppState('app-a', NV_RANGE, { ...DEFAULT_LIMITS, transients: 1000, sessions: 100 }));
  for (let i = 0; i < 4; i++) {
    conn.transients.set(0x80000000 + i, 0x80f00000 + i);
    conn.sessions.add(0x02000000 + i).add(0x03000000 + i);
  }
  conn.app.persistents.set(0x81000100, 0x80e00000);
  conn.app.persistents.set(0x81010000, 0x80e00001);
  return conn;
}

function realAllowed(conn: Connection, h: number): boolean {
  return (
    [...conn.transients.values()].includes(h) ||
    conn.sessions.has(h) ||
    [...conn.app.persistents.values()].includes(h) ||
    inRange(h, NV_RANGE) ||
    h === TPM_RH.NULL ||
    h === TPM_RH.OWNER
  );
}

function check(bytes: Uint8Array): void {
  const conn = connection();
  const d = decide(conn, bytes);
  if (d.kind === 'reply') {
    if (d.rc !== 0) {
      expect(d.response.length).toBe(10);
      expect(new DataView(d.response.buffer, d.response.byteOffset).getUint32(6)).toBe(d.rc);
    }
    return;
  }
  if (d.kind === 'service') {
    if (d.op.op !== 'CreatePrimary') {
      expect(inRange(d.op.persistent, APP_PERSISTENT) && !EVE_PERSISTENT.includes(d.op.persistent)).toBe(true);
    }
    if (d.op.op === 'Persist') expect(realAllowed(conn, d.op.real)).toBe(true);
    return;
  }
  const decoded = unmarshalCommand(d.plan.cmd, d.command);
  // TPM_RH_ENDORSEMENT only as PolicySecret's authHandle (the app's virtual EK policy, rules.ts).
  for (const h of Object.values(decoded.handles)) expect(realAllowed(conn, h) || (d.plan.cmd.code === 0x151 && h === TPM_RH.ENDORSEMENT), `handle 0x${h.toString(16)}`).toBe(true);
  for (const a of decoded.auths) expect(a.sessionHandle === TPM_RH.RS_PW || conn.sessions.has(a.sessionHandle)).toBe(true);
  if (d.plan.cmd.code === 0x165) expect(realAllowed(conn, decoded.params.flushHandle as number)).toBe(true);
  expect(d.command.length).toBeLessThanOrEqual(4096);
}

/** Writes the frame's length into its size field (and maybe another allowed code), so damage reaches the body. */
function patch(b: Uint8Array, code?: number): Uint8Array {
  const out = Uint8Array.from(b);
  const v = new DataView(out.buffer);
  if (out.length >= 6) v.setUint32(2, out.length);
  if (code !== undefined && out.length >= 10) v.setUint32(6, code);
  return out;
}

describe('firewall fuzz', () => {
  it('random bytes, with and without a consistent header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), fc.constantFrom(...codes), (b, fix, code) => check(fix ? patch(Uint8Array.of(0x80, 0x01 + (b[0] ?? 0) % 2, ...b), code) : b)),
      { numRuns: runs(3000) },
    );
  });

  it('mutated tpm2-tss frames', () => {
    const op = fc.oneof(
      fc.record({ at: fc.nat(), bit: fc.nat({ max: 7 }) }).map((o) => (b: Uint8Array) => {
        const c = Uint8Array.from(b);
        if (c.length) c[o.at % c.length]! ^= 1 << o.bit;
        return c;
      }),
      fc.record({ at: fc.nat(), value: fc.constantFrom(0, 0xff, 0x80, 0x81, 0x40, 0x01, 0x02, 0x03) }).map((o) => (b: Uint8Array) => {
        const c = Uint8Array.from(b);
        if (c.length) c[o.at % c.length] = o.value;
        return c;
      }),
      fc.nat().map((n) => (b: Uint8Array) => b.slice(0, n % (b.length + 1))),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((x) => (b: Uint8Array) => Uint8Array.of(...b, ...x)),
    );
    fc.assert(
      fc.property(fc.nat({ max: seeds.length - 1 }), fc.array(op, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.option(fc.constantFrom(...codes)), (i, ops, fix, code) => {
        let b = seeds[i]!;
        for (const f of ops) b = f(b);
        check(fix ? patch(b, code ?? undefined) : b);
      }),
      { numRuns: runs(4000) },
    );
  });

  it('unmutated frames name app handles that map to real ones', () => {
    for (const s of seeds) check(s);
  });
});
