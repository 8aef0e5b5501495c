/**
 * The firewall against a real TPM (swtpm): the frames it forwards are real commands, and the
 * chip's answers map back. Two connections of two apps each create a NULL-hierarchy key and
 * see it at the same virtual handle; signing and flushing reach each app's own key only; an
 * object EVE planted at 0x81000003 stays unreachable and untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_ALG, TPM_CAP, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { marshalCommand, unmarshalResponse } from '../../src/tpm/command.js';
import { akEccTemplate } from '../../src/tpm/keys/templates.js';
import { AppState, Connection } from '../../src/firewall/app.js';
import { decide } from '../../src/firewall/decide.js';
import { finish } from '../../src/firewall/response.js';
import type { Transport } from '../../src/tpm/transport/types.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { frame, pw, u32At } from './build.js';

const available = swtpmAvailable();
const signing = { ...akEccTemplate(), objectAttributes: akEccTemplate().objectAttributes - 0x10000 }; // not restricted
/** Same template, same hierarchy → same key (Part 1 §26.3): `salt` in `unique` makes another one. */
const create = (primaryHandle: number, salt = 0) =>
  frame(C.CreatePrimary, { primaryHandle, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: { ...signing, unique: { x: Uint8Array.of(salt), y: new Uint8Array(0) } } as never, outsideInfo: new Uint8Array(0), creationPCR: [] }, { primaryHandle: pw() });

describe.skipIf(!available)('firewall ↔ swtpm', () => {
  let sw: SwtpmInstance;
  let chip: Transport;
  const rc = (r: Uint8Array) => u32At(r, 6);
  /** Runs one app command through the firewall and the chip; returns the app's response. */
  async function run(conn: Connection, bytes: Uint8Array): Promise<Uint8Array> {
    const d = decide(conn, bytes);
    if (d.kind === 'reply') return d.response;
    if (d.kind === 'service') throw new Error(`service op ${d.op.op}`);
    // The chip may ask for the command again (TPM_RC_RETRY/YIELDED/TESTING), as the library's executor handles.
    let response = await chip.send(d.command);
    for (let i = 0; i < 6 && ([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING] as number[]).includes(rc(response)); i++) response = await chip.send(d.command);
    return finish(conn, d.plan, response);
  }

  beforeAll(async () => {
    sw = await startSwtpm();
    chip = sw.transport();
    // EVE plants its attestation key at 0x81000003 (straight to the chip, no firewall).
    const made = unmarshalResponse(C.CreatePrimary, await chip.send(create(TPM_RH.OWNER))).output;
    expect(rc(await chip.send(marshalCommand(C.EvictControl, { auth: TPM_RH.OWNER, objectHandle: made.objectHandle, persistentHandle: 0x81000003 })))).toBe(0);
    expect(rc(await chip.send(marshalCommand(C.FlushContext, { flushHandle: made.objectHandle })))).toBe(0);
  }, 60_000);
  afterAll(async () => sw?.stop());

  it('renumbers, signs, verifies and flushes per connection on the real chip', async () => {
    const a = new Connection(new AppState('a', { first: 0x01001000, last: 0x010010ff }));
    const b = new Connection(new AppState('b', { first: 0x01002000, last: 0x010020ff }));
    const ra = await run(a, create(TPM_RH.NULL));
    const rb = await run(b, create(TPM_RH.NULL, 1));
    expect([rc(ra), rc(rb)]).toEqual([0, 0]);
    expect([u32At(ra, 10), u32At(rb, 10)]).toEqual([0x80000000, 0x80000000]);
    expect(a.transients.get(0x80000000)).not.toBe(b.transients.get(0x80000000));

    const digest = new Uint8Array(32).fill(7);
    const signed = await run(b, frame(C.Sign, { keyHandle: 0x80000000, digest, inScheme: { scheme: TPM_ALG.NULL, details: null } as never, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) } }, { keyHandle: pw() }));
    expect(rc(signed)).toBe(0);
    const { signature } = unmarshalResponse(C.Sign, signed).output;
    expect(rc(await run(b, frame(C.VerifySignature, { keyHandle: 0x80000000, digest, signature })))).toBe(0);
    // a's key is another key: b's signature does not verify under it.
    expect(rc(await run(a, frame(C.VerifySignature, { keyHandle: 0x80000000, digest, signature })))).not.toBe(0);

    // Real handles are no names for an app: neither may flush b's key by its real handle.
    const bReal = b.transients.get(0x80000000)!;
    expect(bReal).not.toBe(0x80000000);
    expect(rc(await run(a, frame(C.FlushContext, { flushHandle: bReal })))).toBe(TPM_RC.HANDLE + 0x40 + 0x100);
    expect(rc(await run(b, frame(C.FlushContext, { flushHandle: bReal })))).toBe(TPM_RC.HANDLE + 0x40 + 0x100);
    // b flushing its own virtual handle flushes its key, and a's stays loaded.
    expect(rc(await run(b, frame(C.FlushContext, { flushHandle: 0x80000000 })))).toBe(0);
    expect(b.transients.size).toBe(0);
    expect(rc(await run(a, frame(C.ReadPublic, { objectHandle: 0x80000000 })))).toBe(0);

    // ContextSave / ContextLoad by the app that saved; refused to the other.
    const saved = await run(a, frame(C.ContextSave, { saveHandle: 0x80000000 }));
    expect(rc(saved)).toBe(0);
    const { context } = unmarshalResponse(C.ContextSave, saved).output;
    expect(rc(await run(b, frame(C.ContextLoad, { context })))).toBe(TPM_RC.INTEGRITY + 0x40 + 0x100);
    const loaded = await run(a, frame(C.ContextLoad, { context }));
    expect(rc(loaded)).toBe(0);
    expect(u32At(loaded, 10)).toBe(0x80000001);

    // Handle lists show only the app's own.
    const cap = await run(a, frame(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x80000000, propertyCount: 16 }));
    expect(unmarshalResponse(C.GetCapability, cap).output.capabilityData).toEqual({ capability: TPM_CAP.HANDLES, data: [0x80000000, 0x80000001] });
    const persistent = await run(a, frame(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x81000000, propertyCount: 16 }));
    expect(unmarshalResponse(C.GetCapability, persistent).output.capabilityData).toEqual({ capability: TPM_CAP.HANDLES, data: [] });

    // EVE's key: unreachable, and still there afterwards.
    expect(rc(await run(a, frame(C.ReadPublic, { objectHandle: 0x81000003 })))).toBe(TPM_RC.HANDLE + 0x100);
    expect(rc(await run(a, frame(C.FlushContext, { flushHandle: 0x81000003 })))).toBe(TPM_RC.HANDLE + 0x40 + 0x100);
    expect(rc(await chip.send(marshalCommand(C.ReadPublic, { objectHandle: 0x81000003 })))).toBe(0);

    // What each connection still holds, for the service to flush on close.
    for (const h of [...a.loaded().transients]) expect(rc(await chip.send(marshalCommand(C.FlushContext, { flushHandle: h })))).toBe(0);
  }, 60_000);
});
