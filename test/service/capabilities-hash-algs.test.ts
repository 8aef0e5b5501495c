/**
 * GET /v1/capabilities lists the hashes this TPM implements (TPM_CAP_ALGS), asked once by the
 * first request that finds the TPM and kept; while the TPM is away it answers the vocabulary's
 * list and says so, and asks again once the TPM is back. The listing's paging and filtering on a
 * scripted answer (swtpm lists every algorithm in one answer, and implements every hash).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP, type TpmRunner } from '../../src/tpm/index.js';
import { implementedHashes } from '../../src/service/tpm/hash-algs.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { eventually, startEnv, type TestEnv } from './env.js';

const ALL = ['sha1', 'sha256', 'sha384', 'sha512'];

describe('the hashes a TPM implements', () => {
  it('follows moreData from the last algorithm listed, and keeps the vocabulary\'s order', async () => {
    const asked: number[] = [];
    // A TPM without SHA-1 or SHA-512 that lists two algorithms per answer, from the one asked for:
    // HMAC, AES | KEYEDHASH, SHA-256 | SHA-384, RSAPSS (past SHA-512, the vocabulary's last: it stops).
    const pages: Record<number, { more: boolean; algs: number[] }> = {
      0x0004: { more: true, algs: [0x0005, 0x0006] },
      0x0007: { more: true, algs: [0x0008, 0x000b] },
      0x000c: { more: true, algs: [0x000c, 0x0016] },
    };
    const tpm = {
      run: async (_cmd: unknown, p: { capability: number; property: number }) => {
        asked.push(p.property);
        const page = pages[p.property]!;
        return { moreData: page.more, capabilityData: { capability: TPM_CAP.ALGS, data: page.algs.map((alg) => ({ alg, algProperties: 0 })) } };
      },
    } as unknown as TpmRunner;
    expect(await implementedHashes(tpm)).toEqual(['sha256', 'sha384']);
    expect(asked).toEqual([0x0004, 0x0007, 0x000c]);
  });

  it('an answer of another capability, or with none of the hashes, is an error (the service then answers the vocabulary)', async () => {
    const other = { run: async () => ({ moreData: false, capabilityData: { capability: TPM_CAP.PCRS, data: [] } }) } as unknown as TpmRunner;
    await expect(implementedHashes(other)).rejects.toThrow('the TPM answered TPM_CAP_ALGS with another capability');
    const none = { run: async () => ({ moreData: false, capabilityData: { capability: TPM_CAP.ALGS, data: [{ alg: 0x0001, algProperties: 0 }] } }) } as unknown as TpmRunner;
    await expect(implementedHashes(none)).rejects.toThrow("the TPM listed none of the API's hash algorithms in TPM_CAP_ALGS");
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('capabilities on the real service', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }] });
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('while the TPM is away: the vocabulary, said so; once back: the TPM\'s list, asked once', async () => {
    const alice = env.client('alice');
    env.swtpm.kill();
    const away = await alice.request('capabilities', {});
    expect(away).toMatchObject({ hashAlgs: ALL, hashAlgsFrom: 'vocabulary' });
    // Known away now: answered without queueing a job.
    await eventually(() => env.service.core.supervisor.reachable === false, 10_000, 'the TPM seen away');
    const from = env.commands.length;
    expect(await alice.request('capabilities', {})).toMatchObject({ hashAlgsFrom: 'vocabulary' });
    expect(env.commands.length).toBe(from);

    await env.swtpm.restart();
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'the TPM back');
    const before = env.commands.length;
    expect(await alice.request('capabilities', {})).toMatchObject({ hashAlgs: ALL, hashAlgsFrom: 'tpm' });
    expect(env.commands.slice(before)).toEqual(['GetCapability']);
    expect(await alice.request('capabilities', {})).toMatchObject({ hashAlgs: ALL, hashAlgsFrom: 'tpm' });
    expect(env.commands.length).toBe(before + 1);
  });
});
