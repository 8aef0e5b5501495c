/**
 * The raw channel keeps an app connection's objects loaded between its commands while nobody
 * needs the slots (space.ts), against a real service on swtpm (3 object slots), counting the
 * TPM commands the chip sees: a hot Sign is one Sign; under slot pressure from another app and
 * from /v1 keys the least recently used object is saved out and brought back; a sequence lent
 * mid-way still completes with the right digest; close flushes; a TPM restart costs at most the
 * TPM's own error, never the connection.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP, TPM_RH, TPM_SU } from '../../src/tpm/constants.js';
import { TpmError } from '../../src/tpm/rc.js';
import * as C from '../../src/tpm/commands.js';
import { Tpm } from '../../src/tpm/index.js';
import { NULL_HASHCHECK } from '../../src/tpm/ops/general-sign.js';
import { signDigest } from '../../src/tpm/ops/sign.js';
import { akEccTemplate } from '../../src/tpm/keys/templates.js';
import { RawClient } from '../../src/service/client/raw-client.js';
import { Transients, type SlotLender } from '../../src/service/tpm/transients.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { rawSettled, recordCommands } from './helpers.js';
import { Shutdown } from '../helpers/hierarchy.js';

const SIGNING = { ...akEccTemplate(), objectAttributes: akEccTemplate().objectAttributes - 0x10000 }; // not restricted
const DIGEST = new Uint8Array(32).fill(7);

describe('Transients: every slot lender in one order', () => {
  /** A lender holding one idle object last used at `used` (undefined: none), recording who gave a slot back. */
  const lender = (name: string, used: number | undefined, gives: boolean, log: string[]): SlotLender => ({
    slots: undefined,
    idleSince: () => used,
    reclaim: () => {
      log.push(name);
      return Promise.resolve(gives);
    },
    reissued: () => log.push(`${name} reissued`),
  });

  it('the least recently used idle object goes first, whoever holds it; the next one when that lender cannot', async () => {
    const t = new Transients();
    expect(t.lender).toBeUndefined();
    const log: string[] = [];
    const [cache, rawA, rawB] = [lender('cache', 5, true, log), lender('rawA', 3, false, log), lender('rawB', undefined, true, log)];
    for (const l of [cache, rawA, rawB]) t.addLender(l);
    expect(await t.lender!.reclaim(undefined as never)).toBe(true);
    expect(log).toEqual(['rawA', 'cache']); // rawB has nothing idle: never asked
    t.lender!.reissued(0x80000000);
    expect(log.slice(2)).toEqual(['cache reissued', 'rawA reissued', 'rawB reissued']);
    t.removeLender(cache);
    log.length = 0;
    expect(await t.lender!.reclaim(undefined as never)).toBe(false);
    expect(log).toEqual(['rawA']);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable(), 'swtpm'))('raw channel: objects kept loaded between commands', () => {
  let env: TestEnv;
  const clients: RawClient[] = [];
  /** Every command frame the service sends to swtpm, by name (recorded at the transport: the raw channel's too). */
  const sent: string[] = [];

  beforeAll(async () => {
    env = await startEnv({ config: { objectCache: 4 } });
    recordCommands(env.tpm.transport, sent);
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await env?.stop();
  });

  /** The library over one raw connection of `tenant`. */
  const app = async (tenant: string): Promise<{ tpm: Tpm; client: RawClient }> => {
    const client = await RawClient.open(env.unix, env.secrets[tenant]);
    clients.push(client);
    const tpm = new Tpm({ description: `raw:${tenant}`, send: (f) => client.transact(f), close: () => Promise.resolve(client.close()) });
    return { tpm, client };
  };
  const primary = async (tpm: Tpm, seed = 0): Promise<number> => {
    const p = await tpm.run(C.CreatePrimary, {
      primaryHandle: TPM_RH.NULL,
      inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
      inPublic: SIGNING as never,
      outsideInfo: Uint8Array.of(seed),
      creationPCR: [],
    });
    return p.objectHandle;
  };
  const sign = (tpm: Tpm, handle: number) => signDigest(tpm, { handle, name: new Uint8Array(0) }, DIGEST, { ...NULL_HASHCHECK });
  /** The TPM commands the chip sees while `fn` runs. */
  const seen = async (fn: () => Promise<unknown>): Promise<string[]> => {
    const from = sent.length;
    await fn();
    return sent.slice(from);
  };
  const onChip = async (property: number): Promise<number[]> =>
    (await env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property, propertyCount: 64 })).capabilityData)).data as number[];
  const closeAll = async (): Promise<void> => {
    for (const c of clients.splice(0)) c.close();
    await rawSettled(env);
  };

  it('two Signs with an app key on one connection: the chip sees the second as one Sign', async () => {
    const { tpm } = await app('alice');
    const key = await primary(tpm);
    await sign(tpm, key);
    expect(await seen(() => sign(tpm, key))).toEqual(['Sign']);
    expect(await seen(() => sign(tpm, key))).toEqual(['Sign']);
    await closeAll();
    expect(await onChip(0x80000000)).toEqual([]);
  });

  it('slot pressure from another app and /v1 keys: every command succeeds; the raw objects are saved out and brought back', async () => {
    const a = await app('alice');
    const keys = [await primary(a.tpm, 1), await primary(a.tpm, 2)];
    for (const k of keys) await sign(a.tpm, k);
    const b = await app('bob');
    const bob = env.client('bob');
    const v1 = [await bob.createKey({ type: 'ecc' }), await bob.createKey({ type: 'ecc' })];
    // Bob's raw primaries and /v1 keys take every slot: alice's idle objects are lent.
    const pressure = await seen(async () => {
      const mine = [await primary(b.tpm, 3), await primary(b.tpm, 4), await primary(b.tpm, 5)];
      for (const k of mine) await sign(b.tpm, k);
      for (const k of v1) await bob.sign(k.handle, { message: new Uint8Array([1]) });
    });
    expect(pressure).toContain('ContextSave');
    // Alice's keys come back from their saved contexts and sign.
    const back = await seen(async () => {
      for (const k of keys) await sign(a.tpm, k);
    });
    expect(back.filter((c) => c === 'Sign')).toHaveLength(2);
    expect(back).toContain('ContextLoad');
    // Lent again and back again (now loaded from a context that stays good): every command still succeeds.
    for (const k of v1) await bob.sign(k.handle, { message: new Uint8Array([2]) });
    for (const k of keys) await sign(a.tpm, k);
    for (const k of v1) await bob.deleteKey(k.handle);
    await closeAll();
    expect(await onChip(0x80000000)).toEqual([]);
  });

  it('a sequence kept loaded across SequenceUpdates, lent out mid-way, completes with the right digest', async () => {
    const a = await app('alice');
    const seq = (await a.tpm.run(C.HashSequenceStart, { auth: new Uint8Array(0), hashAlg: 0x000b as never })).sequenceHandle;
    const update = (data: string) => a.tpm.run(C.SequenceUpdate, { sequenceHandle: seq, buffer: Buffer.from(data) });
    expect(await seen(() => update('abc'))).toEqual(['SequenceUpdate']);
    const b = await app('bob');
    const lent = await seen(async () => {
      for (let i = 0; i < 3; i++) await primary(b.tpm, 10 + i);
    });
    expect(lent).toContain('ContextSave'); // the sequence, saved with its state
    // Back from its saved state (bob's least recently used primary lent for it), then updated.
    const again = await seen(() => update('def'));
    expect(again.filter((c) => c === 'ContextLoad')).toHaveLength(1);
    expect(again.at(-1)).toBe('SequenceUpdate');
    const done = await a.tpm.run(C.SequenceComplete, { sequenceHandle: seq, buffer: Buffer.from('ghi'), hierarchy: TPM_RH.NULL });
    expect(Buffer.from(done.result).toString('hex')).toBe(createHash('sha256').update('abcdefghi').digest('hex'));
    await closeAll();
    expect(await onChip(0x80000000)).toEqual([]);
  });

  it('close flushes the connection’s loaded objects', async () => {
    const a = await app('alice');
    await primary(a.tpm, 20);
    await primary(a.tpm, 21);
    expect(await onChip(0x80000000)).toHaveLength(2); // kept loaded between commands
    await closeAll();
    expect(await onChip(0x80000000)).toEqual([]);
  });

  it('TPM reset with a kept object: the next command gets the TPM’s handle error, the connection goes on', async () => {
    const a = await app('alice');
    const key = await primary(a.tpm, 30);
    await sign(a.tpm, key);
    await env.swtpm.restart();
    await env.onTpm(async () => {}); // the service's transport finds the chip again
    const e = await sign(a.tpm, key).then(
      () => undefined,
      (err: unknown) => err,
    );
    // The object is gone as from /dev/tpmrm0 after a reset: a handle error, not a closed channel.
    if (e !== undefined) expect(e).toBeInstanceOf(TpmError);
    expect((await a.tpm.run(C.GetRandom, { bytesRequested: 4 })).randomBytes).toHaveLength(4);
    const fresh = await primary(a.tpm, 31);
    await sign(a.tpm, fresh);
    await closeAll();
    expect(await onChip(0x80000000)).toEqual([]);
  });

  it('TPM resume with a kept key that has a saved context: the Sign succeeds from that context', async () => {
    const a = await app('alice');
    const key = await primary(a.tpm, 40);
    await sign(a.tpm, key);
    // Lent out once (saved), then back: now loaded from a context that stays good.
    const b = await app('bob');
    for (let i = 0; i < 3; i++) await primary(b.tpm, 41 + i);
    expect(await seen(() => sign(a.tpm, key))).toContain('ContextLoad');
    await env.onTpm((t) => t.run(Shutdown, { shutdownType: TPM_SU.STATE }));
    await env.swtpm.restart({ flags: 'not-need-init,startup-state' });
    const after = await seen(() => sign(a.tpm, key));
    expect(after.filter((c) => c === 'Sign').length).toBeGreaterThanOrEqual(1);
    expect(after).toContain('ContextLoad');
    await env.swtpm.restart({ flags: 'not-need-init,startup-clear' });
    await closeAll();
    expect(await onChip(0x80000000)).toEqual([]);
  });
});
