/**
 * Descriptors declare which handles a command loads (`creates`) and which it flushes
 * (`flushes`; sessions without continueSession end too): the service's bookkeeping of
 * transient handles rests on these declarations alone. Checked two ways: against a table
 * written from TPM 2.0 Part 3 (every command with a transient response handle declares it),
 * and against swtpm itself, whose handle lists before and after each command must change by
 * exactly what the descriptor declares.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ContextLoad,
  ContextSave,
  Create,
  CreatePrimary,
  FlushContext,
  HashSequenceStart,
  Load,
  PolicySecret,
  SequenceComplete,
  SequenceUpdate,
  StartAuthSession,
  TPM_ALG,
  TPM_RH,
  TPM_SE,
  Tpm,
  akTemplate,
  command,
  ekTemplate,
  policyAuth,
  type CommandDescriptor,
  type CommandInput,
  type RunOptions,
} from '../../src/tpm/index.js';
import { flushedHandle, sessionEnds } from '../../src/tpm/command/descriptor.js';
import { COMMANDS } from '../../src/tpm/commands.js';
import { TPM_HANDLE } from '../../src/tpm/structures.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';

/**
 * From Part 3, by hand: the response handles that name a newly loaded transient object,
 * sequence or session, and what each command flushes when it succeeds.
 */
const PART3: Record<string, { creates?: string[]; flushes?: string[] }> = {
  CreatePrimary: { creates: ['objectHandle'] }, // §24.1: "a Primary Object ... loaded"
  Load: { creates: ['objectHandle'] }, // §12.2
  ContextLoad: { creates: ['loadedHandle'] }, // §28.3
  HashSequenceStart: { creates: ['sequenceHandle'] }, // §17.3
  StartAuthSession: { creates: ['sessionHandle'] }, // §11.1
  FlushContext: { flushes: ['parameter flushHandle'] }, // §28.4
  SequenceComplete: { flushes: ['handle sequenceHandle'] }, // §17.5: the sequence object is flushed
};

type AnyCommand = CommandDescriptor<any, any, any, any>;

describe('descriptor declarations', () => {
  it('every descriptor with a transient response handle declares it; the rest declare what Part 3 says', () => {
    const seen: Record<string, { creates?: string[]; flushes?: string[] }> = {};
    for (const cmd of COMMANDS.values()) {
      // No response handle goes undeclared: each one is a new transient entity (Part 3).
      expect(cmd.creates, cmd.name).toEqual(cmd.responseHandles);
      const d: { creates?: string[]; flushes?: string[] } = {};
      if (cmd.creates.length > 0) d.creates = [...cmd.creates];
      if (cmd.flushes.length > 0) d.flushes = cmd.flushes.map((f) => `${f.from} ${f.name}`);
      if (d.creates || d.flushes) seen[cmd.name] = d;
    }
    expect(seen).toEqual(PART3);
    expect(FlushContext.onlyFlushes).toBe(true);
    expect(SequenceComplete.onlyFlushes).toBe(false); // it returns the digest: not a cleanup
  });

  it('refuses a declaration that names no handle or parameter of the command', () => {
    const base = { name: 'X', code: 0x1ff, spec: 'test', handles: { h: 'noauth' as const }, params: { p: TPM_HANDLE }, responseHandles: ['r'] as const, response: {} };
    expect(() => command({ ...base, creates: ['s' as 'r'] })).toThrow(/creates names s/);
    expect(() => command({ ...base, flushes: [{ handle: 'g' as 'h' }] })).toThrow(/flushes names handle g/);
    expect(() => command({ ...base, flushes: [{ parameter: 'q' as 'p' }] })).toThrow(/flushes names parameter q/);
    expect(command({ ...base, creates: ['r'], flushes: [{ parameter: 'p' }] }).onlyFlushes).toBe(false);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('declarations match what swtpm does', () => {
  let sw: SwtpmInstance;
  let tpm: Tpm;
  const exercised = new Set<string>();

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = new Tpm(sw.transport());
  });
  afterAll(async () => {
    await sw?.stop();
  });

  const all = async (): Promise<Set<number>> => {
    const l = await loadedHandles(tpm);
    return new Set([...l.transient, ...l.sessions]);
  };

  /** Runs `cmd`, then checks that the TPM's handles changed by exactly what it declares. */
  async function step<C extends AnyCommand>(cmd: C, input: CommandInput<C>, opts: RunOptions = {}): Promise<Record<string, unknown>> {
    const before = await all();
    const out = (await tpm.run(cmd, input, opts)) as Record<string, unknown>;
    const after = await all();
    const created = cmd.creates.map((n: string) => out[n] as number);
    const flushed: number[] = cmd.flushes.map((f) => flushedHandle(f, input as Record<string, unknown>));
    sessionEnds(opts.auth, opts.sessions, (h) => flushed.push(h));
    expect([...after].filter((h) => !before.has(h)).sort(), `${cmd.name}: handles that appeared`).toEqual(created.sort());
    expect([...before].filter((h) => !after.has(h)).sort(), `${cmd.name}: handles that went`).toEqual(flushed.sort());
    exercised.add(cmd.name);
    return out;
  }

  const nonce = (): Uint8Array => new Uint8Array(randomBytes(32));
  const empty = new Uint8Array(0);

  async function policySession(): Promise<number> {
    const s = await step(StartAuthSession, {
      tpmKey: TPM_RH.NULL,
      bind: TPM_RH.NULL,
      nonceCaller: nonce(),
      encryptedSalt: empty,
      sessionType: TPM_SE.POLICY,
      symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
      authHash: TPM_ALG.SHA256,
    });
    const handle = s.sessionHandle as number;
    await step(PolicySecret, { authHandle: TPM_RH.ENDORSEMENT, policySession: handle, nonceTPM: empty, cpHashA: empty, policyRef: empty, expiration: 0 });
    return handle;
  }

  it('every command that declares an effect, run in turn', async () => {
    expect(await all()).toEqual(new Set());
    const ek = (await step(CreatePrimary, {
      primaryHandle: TPM_RH.ENDORSEMENT,
      inSensitive: { userAuth: empty, data: empty },
      inPublic: ekTemplate('ecc'),
      outsideInfo: empty,
      creationPCR: [],
    })).objectHandle as number;

    // A session kept (continueSession) after Create, then one ended by the TPM after Load.
    const kept = await policySession();
    const key = await step(
      Create,
      { parentHandle: ek, inSensitive: { userAuth: empty, data: empty }, inPublic: akTemplate('ecc'), outsideInfo: empty, creationPCR: [] },
      { auth: { parentHandle: policyAuth(kept, nonce()) } },
    );
    const ended = await policySession();
    const loaded = (await step(
      Load,
      { parentHandle: ek, inPrivate: key.outPrivate as Uint8Array, inPublic: key.outPublic as never },
      { auth: { parentHandle: policyAuth(ended, nonce(), { continueSession: false }) } },
    )).objectHandle as number;
    expect(await all()).not.toContain(ended);

    // Save, flush, load again: a new handle.
    const { context } = await step(ContextSave, { saveHandle: loaded });
    await step(FlushContext, { flushHandle: loaded });
    const again = (await step(ContextLoad, { context: context as never })).loadedHandle as number;

    // A sequence completed (flushed by the TPM), one flushed by the caller.
    const seq = (await step(HashSequenceStart, { auth: empty, hashAlg: TPM_ALG.SHA256 })).sequenceHandle as number;
    await step(SequenceUpdate, { sequenceHandle: seq, buffer: new Uint8Array(1024) });
    await step(SequenceComplete, { sequenceHandle: seq, buffer: new Uint8Array(10), hierarchy: TPM_RH.OWNER });
    const seq2 = (await step(HashSequenceStart, { auth: empty, hashAlg: TPM_ALG.SHA256 })).sequenceHandle as number;
    await step(FlushContext, { flushHandle: seq2 });

    for (const h of [again, kept, ek]) await step(FlushContext, { flushHandle: h });
    expect(await all()).toEqual(new Set());
    // Every command that declares an effect was seen doing it.
    expect([...exercised].filter((n) => PART3[n]).sort()).toEqual(Object.keys(PART3).sort());
  });
});
