/**
 * The idle limit of kept sessions against a real TPM (swtpm), on a fake clock: sessions an app
 * saved itself are kept past its connection; one unused for the idle limit is flushed by the
 * service's sweep (a cleanup queue job, src/service/raw/kept-idle.ts) and forgotten, and the
 * app's later ContextLoad of it gets the chip's own answer. One loaded again in time is the
 * loading connection's (not flushed). Order and counts only, no sleeping.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { TPM_ALG, TPM_CAP, TPM_RH } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, unmarshalResponse } from '../../src/tpm/command.js';
import { Tpm } from '../../src/tpm/index.js';
import type { TPMS_CONTEXT } from '../../src/tpm/structures.js';
import type { Transport } from '../../src/tpm/transport/types.js';
import { AppState, Connection, DEFAULT_LIMITS } from '../../src/firewall/app.js';
import { decide } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import { claimSessions, keepSessions } from '../../src/firewall/kept-sessions.js';
import { TpmQueue } from '../../src/service/tpm/queue.js';
import { KeptIdle } from '../../src/service/raw/kept-idle.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';

const MINUTE = 60_000;
const rcOf = (r: Uint8Array): number => new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(6);

describe.skipIf(!swtpmAvailable())('kept sessions expire when idle (swtpm)', () => {
  let sw: SwtpmInstance;
  let chip: Transport;
  let queue: TpmQueue;
  let t = 0;
  const app = new AppState('kept-idle-app', { first: 0x01004000, last: 0x010040ff }, { ...DEFAULT_LIMITS, keptSessionIdleMs: 10 * MINUTE }, () => t);

  /** One app command through the firewall and the chip. */
  async function run(conn: Connection, frame: Uint8Array): Promise<Uint8Array> {
    const d = decide(conn, frame);
    if (d.kind === 'reply') return d.response;
    if (d.kind !== 'forward') throw new Error(d.kind);
    return finish(conn, d.plan, await chip.send(d.command));
  }
  const start = (conn: Connection) =>
    run(conn, marshalCommand(C.StartAuthSession, { tpmKey: TPM_RH.NULL, bind: TPM_RH.NULL, nonceCaller: new Uint8Array(16), encryptedSalt: new Uint8Array(0), sessionType: 0, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null }, authHash: TPM_ALG.SHA256 } as never));
  const save = async (conn: Connection, saveHandle: number): Promise<TPMS_CONTEXT> => unmarshalResponse(C.ContextSave, await run(conn, marshalCommand(C.ContextSave, { saveHandle }))).output.context;
  const load = (conn: Connection, context: TPMS_CONTEXT) => run(conn, marshalCommand(C.ContextLoad, { context }));
  /** Session handles the chip holds (loaded and saved), straight from the chip. */
  const chipSessions = async (): Promise<number[]> => {
    const out: number[] = [];
    for (const property of [0x02000000, 0x03000000]) {
      const r = unmarshalResponse(C.GetCapability, await chip.send(marshalCommand(C.GetCapability, { capability: TPM_CAP.HANDLES, property, propertyCount: 64 }))).output;
      out.push(...(r.capabilityData.data as number[]));
    }
    return out.sort();
  };

  beforeAll(async () => {
    sw = await startSwtpm();
    chip = sw.transport();
    queue = new TpmQueue(new Tpm(chip), { capacity: 8, perTenant: 8 });
  }, 60_000);
  afterAll(async () => sw?.stop());

  it('flushes a kept session idle too long; the app’s ContextLoad of it then gets the chip’s answer', async () => {
    const sweep = new KeptIdle({ queue, log: pino({ level: 'silent' }), draining: () => false });
    // A connection starts two sessions and saves both itself (as tpm2_startauthsession does), then closes.
    const c1 = new Connection(app);
    const handles: number[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await start(c1);
      expect(rcOf(r)).toBe(TPM_RC.SUCCESS);
      handles.push(new DataView(r.buffer, r.byteOffset).getUint32(10));
    }
    const [s1, s2] = handles as [number, number];
    const [ctx1, ctx2] = [await save(c1, s1), await save(c1, s2)];
    expect(keepSessions(c1, [...c1.sessions])).toEqual([]);
    expect(await chipSessions()).toEqual([s1, s2].sort());

    // Five minutes on, another connection of the app uses s1 (it is that connection's now), saves it and closes.
    t += 5 * MINUTE;
    expect(await sweep.sweep()).toBe(0);
    const c2 = new Connection(app);
    expect(rcOf(await load(c2, ctx1))).toBe(TPM_RC.SUCCESS);
    claimSessions(c2);
    const ctx1b = await save(c2, s1);
    expect(keepSessions(c2, [...c2.sessions])).toEqual([]);

    // Ten minutes after the first close: s2 was unused that long and is flushed; s1 was used since.
    t += 5 * MINUTE;
    expect(await sweep.sweep()).toBe(1);
    expect(await chipSessions()).toEqual([s1]);
    const c3 = new Connection(app);
    const gone = await load(c3, ctx2);
    expect(rcOf(gone)).not.toBe(TPM_RC.SUCCESS);
    // The chip's own answer for a session context it no longer has, passed to the app unchanged.
    const direct = await chip.send(marshalCommand(C.ContextLoad, { context: ctx2 }));
    expect(rcOf(gone)).toBe(rcOf(direct));
    expect(rcOf(gone)).toBe(TPM_RC.HANDLE + 0x140); // TPM_RC_HANDLE + P1
    expect(c3.sessions.size).toBe(0);

    // s1 too, ten minutes after its own close.
    t += 5 * MINUTE;
    expect(await sweep.sweep()).toBe(1);
    expect(await chipSessions()).toEqual([]);
    expect(rcOf(await load(c3, ctx1b))).toBe(rcOf(direct));
  });
});
