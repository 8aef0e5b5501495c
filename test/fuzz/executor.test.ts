/**
 * The executor against a hostile TPM: a fake transport whose responses are truncated, mis-sized,
 * mis-tagged, padded, lying about parameterSize, missing their auth area, random, meant for
 * another command, RETRY for ever, or that throws. `tpm.run` must reject with TpmDecodeError,
 * TpmError or the transport's own error — never hang, never resolve with a value the bytes do
 * not strictly encode.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS, GetRandom, PolicyGetDigest, ReadPublic, Sign } from '../../src/tpm/commands.js';
import { marshalErrorResponse, marshalResponse, type AuthResponse, type CommandDescriptor } from '../../src/tpm/command.js';
import { TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC, TpmError } from '../../src/tpm/rc.js';
import { Tpm } from '../../src/tpm/tpm.js';
import type { SendOptions, Transport } from '../../src/tpm/transport/types.js';
import { TpmTransportError } from '../../src/tpm/transport/types.js';
import { TpmDecodeError } from '../../src/tpm/wire/errors.js';
import { commandInputArb, responseOutputArb, runs } from './arbitraries.js';

/**
 * The executor's back-off sleep, recorded instead of waited: the delays it asks for are the
 * oracle, not the wall clock. `hold` makes a sleep last until its signal aborts.
 */
const backoff = vi.hoisted(() => ({ delays: [] as number[], hold: false }));
vi.mock('node:timers/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:timers/promises')>();
  return {
    ...real,
    setTimeout: <T>(ms: number, value?: T, opts?: { signal?: AbortSignal }): Promise<T | undefined> => {
      backoff.delays.push(ms);
      return backoff.hold ? real.setTimeout(0x7fffffff, value, { ...opts, ref: false }) : Promise.resolve(value);
    },
  };
});

type Reply = Uint8Array | Error | ((command: Uint8Array, n: number) => Uint8Array | Promise<Uint8Array>);

/** A transport that answers every command from `reply` and counts what it was sent. */
class FakeTransport implements Transport {
  readonly description = 'fake:hostile';
  readonly sent: Uint8Array[] = [];
  constructor(private readonly reply: Reply) {}
  async send(command: Uint8Array, _opts?: SendOptions): Promise<Uint8Array> {
    this.sent.push(command);
    const r = this.reply;
    if (r instanceof Error) throw r;
    if (typeof r === 'function') return r(command, this.sent.length);
    return r;
  }
  async close(): Promise<void> {}
}

const be32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const withSize = (b: Uint8Array) => {
  const out = Uint8Array.from(b);
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
};

/** Fails the test instead of hanging when a promise never settles. */
async function settle<T>(p: Promise<T>, ms = 5000): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung for ${ms} ms`)), ms);
  });
  try {
    return { ok: true, value: await Promise.race([p, hang]) };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('hung for')) throw error;
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

const fast = { maxRetries: 3, retryDelayMs: 0 };

// Valid inputs and responses for a few commands, to damage one way at a time.
const signInput = {
  keyHandle: 0x81010000,
  digest: new Uint8Array(32).fill(7),
  inScheme: { scheme: TPM_ALG.NULL, details: null },
  validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) },
};
const signOk = marshalResponse(
  Sign,
  { signature: { sigAlg: TPM_ALG.ECDSA, signature: { hash: TPM_ALG.SHA256, signatureR: new Uint8Array(32).fill(1), signatureS: new Uint8Array(32).fill(2) } } },
  [{ nonceTPM: new Uint8Array(0), sessionAttributes: 1, hmac: new Uint8Array(0) }],
);
const getRandomOk = marshalResponse(GetRandom, { randomBytes: new Uint8Array(16).fill(9) });

describe('executor against hostile responses (one damage at a time)', () => {
  const cases: [string, Reply, 'decode' | 'tpm'][] = [
    ['empty response', new Uint8Array(0), 'decode'],
    ['shorter than a header', Uint8Array.from([0x80, 0x01, 0, 0]), 'decode'],
    ['truncated (size field says more)', signOk.slice(0, signOk.length - 5), 'decode'],
    ['truncated inside the parameters, size field patched', withSize(signOk.slice(0, 40)), 'decode'],
    ['size field smaller than the frame', (() => { const b = Uint8Array.from(signOk); new DataView(b.buffer).setUint32(2, 20); return b; })(), 'decode'],
    ['size field 2^32-1', (() => { const b = Uint8Array.from(signOk); new DataView(b.buffer).setUint32(2, 0xffffffff); return b; })(), 'decode'],
    ['unknown tag', (() => { const b = Uint8Array.from(signOk); b[1] = 0x03; return b; })(), 'decode'],
    ['NO_SESSIONS tag where a session was sent', (() => { const b = Uint8Array.from(signOk); b[1] = 0x01; return b; })(), 'decode'],
    ['trailing bytes (size patched)', withSize(Uint8Array.from([...signOk, 0, 0])), 'decode'],
    ['parameterSize bigger than the frame', (() => { const b = Uint8Array.from(signOk); new DataView(b.buffer).setUint32(10, 0xfffffff0); return b; })(), 'decode'],
    ['parameterSize smaller than the parameters', (() => { const b = Uint8Array.from(signOk); const dv = new DataView(b.buffer); dv.setUint32(10, dv.getUint32(10) - 1); return b; })(), 'decode'],
    ['parameterSize larger than the parameters', (() => { const b = Uint8Array.from(signOk); const dv = new DataView(b.buffer); dv.setUint32(10, dv.getUint32(10) + 2); return b; })(), 'decode'],
    // The auth response of an empty-password session is 5 bytes: nonce size, attributes, hmac size.
    ['auth area missing', withSize(signOk.slice(0, signOk.length - 5)), 'decode'],
    ['error code with a body', withSize(Uint8Array.from([...marshalErrorResponse(0x18b), 1, 2, 3])), 'decode'],
    ['response meant for GetRandom', getRandomOk, 'decode'],
    ['a TPM error', marshalErrorResponse(0x3e0), 'tpm'],
    ['a TPM error with TPM_ST_SESSIONS', (() => { const b = marshalErrorResponse(0x9a2); b[1] = 0x02; return b; })(), 'tpm'],
  ];

  it.each(cases)('%s → rejects', async (_name, reply, kind) => {
    const tpm = new Tpm(new FakeTransport(reply), fast);
    const r = await settle(tpm.run(Sign, signInput));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(kind === 'decode' ? TpmDecodeError : TpmError);
  });

  it('the undamaged response resolves (the fixtures above are otherwise valid)', async () => {
    const tpm = new Tpm(new FakeTransport(signOk), fast);
    const out = await tpm.run(Sign, signInput);
    expect(out.signature.sigAlg).toBe(TPM_ALG.ECDSA);
  });

  it('names the parameter a format-one error points at', async () => {
    const tpm = new Tpm(new FakeTransport(marshalErrorResponse(0x3e0)), fast);
    const r = await settle(tpm.run(Sign, signInput));
    const e = (r as { error: TpmError }).error;
    expect(e.message).toBe('tpm:parameter(3):invalid ticket');
    expect(e.command).toBe('Sign');
    expect((e as { subject?: string }).subject).toBe('validation');
  });

  it('a response to a different command with the same shape cannot be told apart (documented limit)', async () => {
    // GetRandom's and PolicyGetDigest's responses are both one TPM2B_DIGEST: only the caller's
    // bookkeeping (one command in flight per transport) keeps them apart.
    const tpm = new Tpm(new FakeTransport(getRandomOk), fast);
    const out = await tpm.run(PolicyGetDigest, { policySession: 0x03000000 });
    expect(out.policyDigest).toStrictEqual(new Uint8Array(16).fill(9));
  });
});

describe('executor retries', () => {
  beforeEach(() => {
    backoff.delays.length = 0;
  });
  afterEach(() => {
    backoff.hold = false; // a held back-off would hang the later suites' retries
  });

  for (const [name, rc] of [
    ['RETRY', TPM_RC.RETRY],
    ['YIELDED', TPM_RC.YIELDED],
    ['TESTING', TPM_RC.TESTING],
  ] as const) {
    it(`${name} for ever: gives up after maxRetries and surfaces TpmError(${name})`, async () => {
      const transport = new FakeTransport(marshalErrorResponse(rc));
      const tpm = new Tpm(transport, { maxRetries: 4, retryDelayMs: 1 });
      const r = await settle(tpm.run(GetRandom, { bytesRequested: 8 }));
      expect(r.ok).toBe(false);
      const e = (r as { error: unknown }).error;
      expect(e).toBeInstanceOf(TpmError);
      expect((e as TpmError).is(rc)).toBe(true);
      expect(transport.sent).toHaveLength(5);
    });
  }

  it('RETRY for ever with the default back-off still ends (bounded total wait)', async () => {
    const transport = new FakeTransport(marshalErrorResponse(TPM_RC.RETRY));
    const tpm = new Tpm(transport);
    const r = await settle(tpm.run(GetRandom, { bytesRequested: 8 }));
    expect(r.ok).toBe(false);
    expect((r as { error: TpmError }).error.is(TPM_RC.RETRY)).toBe(true);
    expect(transport.sent.length).toBe(7);
    // 20 ms doubling between the 7 sends: 1.26 s of back-off in all.
    expect(backoff.delays).toEqual([20, 40, 80, 160, 320, 640]);
  });

  it('RETRY then success: resends the same bytes and resolves', async () => {
    const transport = new FakeTransport((_c, n) => (n < 3 ? marshalErrorResponse(TPM_RC.RETRY) : getRandomOk));
    const tpm = new Tpm(transport, fast);
    const out = await tpm.run(GetRandom, { bytesRequested: 16 });
    expect(out.randomBytes).toStrictEqual(new Uint8Array(16).fill(9));
    expect(transport.sent).toHaveLength(3);
    expect(transport.sent[1]).toStrictEqual(transport.sent[0]);
  });

  it('an abort during the back-off rejects at once', async () => {
    // The back-off never ends by itself here: only the abort can end it.
    backoff.hold = true;
    const transport = new FakeTransport(marshalErrorResponse(TPM_RC.RETRY));
    const tpm = new Tpm(transport, { maxRetries: 100, retryDelayMs: 1000 });
    const ac = new AbortController();
    let outcome: unknown;
    const p = tpm.run(GetRandom, { bytesRequested: 8 }, { signal: ac.signal }).then(
      () => (outcome = 'resolved'),
      (e: unknown) => (outcome = e),
    );
    while (backoff.delays.length === 0) await new Promise((r) => setImmediate(r));
    expect(transport.sent).toHaveLength(1); // in the back-off now
    ac.abort();
    for (let i = 0; i < 5 && outcome === undefined; i++) await new Promise((r) => setImmediate(r));
    expect((outcome as Error | undefined)?.name).toBe('AbortError');
    expect(transport.sent).toHaveLength(1);
    await p;
  });
});

describe('executor when the transport fails', () => {
  it.each([
    ['a TpmTransportError', new TpmTransportError('TIMEOUT', 'deadline passed')],
    ['a plain Error', new Error('socket closed')],
  ])('rejects with %s as is', async (_n, err) => {
    const r = await settle(new Tpm(new FakeTransport(err), fast).run(ReadPublic, { objectHandle: 0x81010000 }));
    expect(r.ok).toBe(false);
    expect((r as { error: unknown }).error).toBe(err);
  });

  it('a send that throws synchronously', async () => {
    const err = new TpmTransportError('CLOSED', 'closed');
    const t: Transport = {
      description: 'fake:sync-throw',
      send: () => {
        throw err;
      },
      close: async () => {},
    };
    const r = await settle(new Tpm(t, fast).run(GetRandom, { bytesRequested: 1 }));
    expect((r as { error: unknown }).error).toBe(err);
  });
});

/**
 * The auth area of a response frame that was accepted, read by hand (Part 1 §18: after the
 * handles, parameterSize, the parameters, then per session nonceTPM, attributes, hmac), so the
 * oracle below does not lean on the decoder under test.
 */
function authsOf(cmd: CommandDescriptor<any, any, any, any>, b: Uint8Array): AuthResponse[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dv.getUint16(0) !== TPM_ST.SESSIONS) return [];
  let at = 10 + 4 * cmd.responseHandles.length;
  at += 4 + dv.getUint32(at);
  const out: AuthResponse[] = [];
  while (at < b.length) {
    const n = dv.getUint16(at);
    const nonceTPM = b.slice(at + 2, at + 2 + n);
    at += 2 + n;
    const sessionAttributes = b[at++]!;
    const h = dv.getUint16(at);
    out.push({ nonceTPM, sessionAttributes, hmac: b.slice(at + 2, at + 2 + h) });
    at += 2 + h;
  }
  return out;
}

describe('executor against generated hostile responses', () => {
  const allowed = (e: unknown) => e instanceof TpmDecodeError || e instanceof TpmError;
  const cmds = [...COMMANDS.values()] as CommandDescriptor<any, any, any, any>[];

  /** A valid response for `cmd`, then damaged (or replaced by random bytes). */
  const hostile = (cmd: CommandDescriptor<any, any, any, any>) =>
    fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ bytes, intact: undefined as Record<string, unknown> | undefined })),
      fc
        .tuple(
          responseOutputArb(cmd),
          fc.array(
            fc.oneof(
              fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
              fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
              fc.record({ kind: fc.constant('pad' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
              fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.constantFrom(0, 0xffff, 0xffffffff, 0x922) }),
            ),
            { maxLength: 3 },
          ),
          fc.boolean(),
        )
        .map(([{ handles, params, auths }, damage, fixSize]) => {
          const value = { ...handles, ...params };
          let b = marshalResponse(cmd, value, auths);
          for (const d of damage) {
            if (d.kind === 'pad') b = Uint8Array.from([...b, ...d.bytes]);
            else if (b.length === 0) continue;
            else if (d.kind === 'flip') b[d.at % b.length] = b[d.at % b.length]! ^ (1 << d.bit);
            else if (d.kind === 'cut') b = b.slice(0, d.at % b.length);
            else if (b.length >= 4) new DataView(b.buffer, b.byteOffset).setUint32(d.at % (b.length - 3), d.value);
          }
          const bytes = fixSize && b.length >= 6 ? withSize(b) : b;
          // Undamaged: the generated value is what a strict decode must give.
          return { bytes, intact: damage.length === 0 ? value : undefined };
        }),
    );

  it.each(cmds.map((c) => [c.name, c] as const))('%s: rejects with a typed error or resolves with exactly what the bytes say', async (_n, cmd) => {
    await fc.assert(
      fc.asyncProperty(commandInputArb(cmd), hostile(cmd), async ({ handles, params }, { bytes: reply, intact }) => {
        const transport = new FakeTransport(reply);
        const r = await settle(new Tpm(transport, { maxRetries: 2, retryDelayMs: 0 }).run(cmd, { ...handles, ...params } as never));
        expect(transport.sent.length).toBeLessThanOrEqual(3);
        if (!r.ok) {
          if (!allowed(r.error)) throw r.error;
          return;
        }
        // Resolving is right only if the bytes strictly encode that value: encoding it again,
        // with the frame's own auth area, gives the frame back byte for byte.
        expect(marshalResponse(cmd, r.value as never, authsOf(cmd, reply))).toStrictEqual(Uint8Array.from(reply));
        if (intact) expect(r.value).toStrictEqual(intact);
      }),
      { numRuns: runs(40) },
    );
  });
});
