/**
 * key-health.ts on its own: which TPM failures mean a key is lost for good (Load refusing the
 * key's blobs), which mean it is only missing (tpm store, persistent object gone), which say
 * nothing about the key; and the bookkeeping — logged once, refused later without the TPM, a
 * new key at a reused handle unaffected.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TPM_CC, TpmError, TpmTransportError } from '../../src/tpm/index.js';
import { ServiceError } from '../../src/service/protocol/errors.js';
import { KeyHealth, diagnoseKeyFailure } from '../../src/service/keys/key-health.js';
import { createLogger } from '../../src/service/logger.js';
import type { KeyEntry } from '../../src/service/keys/registry.js';

const LOAD = { name: 'Load', code: TPM_CC.Load };
const READ_PUBLIC = { name: 'ReadPublic', code: TPM_CC.ReadPublic };
const SIGN = { name: 'Sign', code: TPM_CC.Sign };

const entry = (over: Partial<KeyEntry> = {}): KeyEntry => ({
  handle: 0x81010000,
  owner: 'alice-record',
  tenant: 'alice',
  type: 'ecc',
  hashAlg: 'sha256',
  name: '000b' + 'aa'.repeat(32),
  createdAt: '2025-01-01T00:00:00.000Z',
  state: 'committed',
  store: 'blobs',
  ...over,
});

function health(): { h: KeyHealth; logs: Array<Record<string, unknown>>; missing: () => number } {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  let n = 0;
  return { h: new KeyHealth(createLogger('info', sink), { request: () => n++ }), logs, missing: () => n };
}

describe('diagnoseKeyFailure', () => {
  it('calls a Load refusing the key material lost for good', () => {
    const integrity = diagnoseKeyFailure(entry(), new TpmError(0x1df, LOAD)); // parameter(1) integrity
    expect(integrity).toMatchObject({ permanent: true, tpmRc: '0x000001df', tpmText: 'tpm:parameter(1):integrity check failed' });
    expect(integrity!.reason).toMatch(/TPM was cleared.*or the key file is damaged/);
    const badPublic = diagnoseKeyFailure(entry(), new TpmError(0x2c2, LOAD)); // parameter(2) attributes
    expect(badPublic).toMatchObject({ permanent: true });
    expect(badPublic!.reason).toMatch(/damaged or was not made by this TPM/);
  });

  it("names the app's erased parent as a cause for a general key, the endorsement seed for an AK", () => {
    const general = diagnoseKeyFailure(entry({ kind: 'general', usage: 'sign', scheme: 'ecdsa', curve: 'P-256' }), new TpmError(0x1df, LOAD));
    expect(general!.reason).toMatch(/app's storage parent was erased/);
    expect(general!.reason).not.toMatch(/endorsement seed/);
    expect(diagnoseKeyFailure(entry(), new TpmError(0x1df, LOAD))!.reason).toMatch(/endorsement seed/);
  });

  it('says nothing about the key for failures that are not its material', () => {
    expect(diagnoseKeyFailure(entry(), new TpmError(0x18b, LOAD))).toBeUndefined(); // handle(1): the parent
    expect(diagnoseKeyFailure(entry(), new TpmError(0x98e, LOAD))).toBeUndefined(); // session(1): the policy
    expect(diagnoseKeyFailure(entry(), new TpmError(0x1df, SIGN))).toBeUndefined();
    expect(diagnoseKeyFailure(entry(), new TpmError(0x18b, READ_PUBLIC))).toBeUndefined(); // blobs store reads no persistent object
    expect(diagnoseKeyFailure(entry(), new TpmTransportError('IO', 'gone'))).toBeUndefined();
    expect(diagnoseKeyFailure(entry(), new Error('x'))).toBeUndefined();
  });

  it('calls a missing persistent object (tpm store) missing, not lost', () => {
    expect(diagnoseKeyFailure(entry({ store: 'tpm' }), new TpmError(0x18b, READ_PUBLIC))).toMatchObject({ permanent: false });
  });
});

describe('KeyHealth', () => {
  it('explains a lost key with a 409 naming it, logs it once, then refuses it without the TPM', () => {
    const { h, logs } = health();
    const e = entry();
    expect(() => h.check(e)).not.toThrow();
    const err = h.explain(e, new TpmError(0x1df, LOAD));
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toMatchObject({ status: 409, code: 'CONFLICT', tpmRc: '0x000001df' });
    expect((err as Error).message).toMatch(/^key 0x81010000 can no longer be loaded by this TPM: .*delete it and create a new key$/);
    h.explain(e, new TpmError(0x1df, LOAD));
    expect(() => h.check(e)).toThrow(/can no longer be loaded/);
    const lost = logs.filter((l) => l.event === 'key-unusable');
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ handle: '0x81010000', tenant: 'alice', tpmRc: '0x000001df' });
    // A later key at the same handle is another key.
    expect(() => h.check(entry({ name: '000b' + 'bb'.repeat(32) }))).not.toThrow();
  });

  it('passes other failures through unchanged', () => {
    const { h, logs } = health();
    const e = new TpmTransportError('IO', 'gone');
    expect(h.explain(entry(), e)).toBe(e);
    expect(h.restoreFailed(entry({ store: 'tpm' }), e)).toBe(false);
    expect(logs.filter((l) => l.event === 'key-unusable')).toEqual([]);
  });

  it('asks for reconciliation when a tpm-store object is missing, without calling the key lost', () => {
    const { h, missing } = health();
    const e = entry({ store: 'tpm' });
    const err = h.explain(e, new TpmError(0x18b, READ_PUBLIC));
    expect(err).toMatchObject({ status: 409, code: 'CONFLICT' });
    expect((err as Error).message).toMatch(/not in the TPM right now.*restoring/);
    expect(missing()).toBe(1);
    expect(h.isLost(e)).toBe(false);
    // Recovery then finds the blobs refused: lost.
    expect(h.restoreFailed(e, new TpmError(0x1df, LOAD))).toBe(true);
    expect(() => h.check(e)).toThrow(/can no longer be loaded/);
  });
});
