/**
 * Our verifier on what stock tpm2-tools make on swtpm (RSA and ECC AKs from tpm2_createak):
 * - tpm2_quote's message and signature (its default, TPMT_SIGNATURE) verify with the AK public
 *   area, the nonce and the PCR values tpm2_pcrread gives; a wrong nonce, wrong PCR values or
 *   another AK are refused;
 * - tpm2_certify's output (tpm2-tools 5.4 has no qualifying data: extraData is empty) passes
 *   every check but freshness, which fails closed for the missing nonce; another Name is refused.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM2B_PUBLIC, TPM_ALG, decode, verifyCertify, verifyQuote, type AttestReport, type KeyType, type TPMT_PUBLIC } from '../../src/tpm/index.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { tpm2Tools, tpm2ToolsAvailable, workDir, type Tpm2Tools } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const KEY_TYPES: KeyType[] = ['rsa', 'ecc'];
const SCHEME: Record<KeyType, string> = { rsa: 'rsassa', ecc: 'ecdsa' };
const NONCE_HEX = '0badc0ffee0ddf00d5eed5';
const NONCE = new Uint8Array(Buffer.from(NONCE_HEX, 'hex'));
const PCRS = [0, 1, 7];

const failed = (r: AttestReport): string[] => r.checks.filter((c) => !c.ok).map((c) => c.name);

describe.skipIf(skipUnlessCI(!(swtpmAvailable() && tpm2ToolsAvailable())))('verifyQuote / verifyCertify on stock tpm2-tools output (swtpm)', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let tools: Tpm2Tools;
  const read = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(join(dir, name)));

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('verify-'));
    tools = tpm2Tools(sw.sockPath, dir);
    await tools('tpm2_pcrextend', `1:sha256=${'ab'.repeat(32)}`);
    await tools('tpm2_pcrextend', `7:sha256=${'cd'.repeat(32)}`);
    await tools('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
  });

  afterAll(async () => {
    await sw?.stop();
    await removeDir?.();
  });

  describe.each(KEY_TYPES)('%s AK', (type) => {
    const f = (s: string): string => `${type}-${s}`;
    let akPublic: TPMT_PUBLIC;
    let akName: Uint8Array;

    beforeAll(async () => {
      await tools('tpm2_createak', '-C', 'ek.ctx', '-c', f('ak.ctx'), '-G', type, '-g', 'sha256', '-s', SCHEME[type], '-u', f('ak.pub'), '-n', f('ak.name'), '-r', f('ak.priv'));
      akPublic = decode(TPM2B_PUBLIC, await read(f('ak.pub')));
      akName = await read(f('ak.name'));
    });

    it('tpm2_quote verifies; wrong nonce, wrong PCR values and another AK are refused', async () => {
      const list = `sha256:${PCRS.join(',')}`;
      await tools('tpm2_quote', '-c', f('ak.ctx'), '-l', list, '-q', NONCE_HEX, '-m', f('quote.msg'), '-s', f('quote.sig'), '-o', f('pcrs.out'), '-g', 'sha256');
      await tools('tpm2_pcrread', list, '-o', f('pcrs.bin'));
      const raw = await read(f('pcrs.bin'));
      expect(raw.length).toBe(32 * PCRS.length);
      const pcrs: Record<number, Uint8Array> = {};
      PCRS.forEach((p, i) => (pcrs[p] = raw.subarray(32 * i, 32 * (i + 1))));
      const input = { akPublic, attestBytes: await read(f('quote.msg')), signature: await read(f('quote.sig')), nonce: NONCE, pcrValues: { [TPM_ALG.SHA256]: pcrs } };

      const r = verifyQuote(input);
      expect(failed(r)).toEqual([]);
      expect(r.ok).toBe(true);

      expect(failed(verifyQuote({ ...input, nonce: new Uint8Array([1]) }))).toEqual(['nonce']);
      expect(failed(verifyQuote({ ...input, pcrValues: { [TPM_ALG.SHA256]: { ...pcrs, 1: new Uint8Array(32) } } }))).toEqual(['pcrDigest']);
      const ek = decode(TPM2B_PUBLIC, await read('ek.pub')); // another key of the same TPM
      const wrongKey = verifyQuote({ ...input, akPublic: ek });
      expect(wrongKey.ok).toBe(false);
      expect(failed(wrongKey)).toContain('signature');
    });

    it('tpm2_certify: every check holds but freshness (no qualifying data); another Name is refused', async () => {
      await tools('tpm2_certify', '-c', f('ak.ctx'), '-C', f('ak.ctx'), '-g', 'sha256', '-o', f('attest.out'), '-s', f('attest.sig'));
      const input = { signerPublic: akPublic, attestBytes: await read(f('attest.out')), signature: await read(f('attest.sig')), objectName: akName, nonce: new Uint8Array(0) };
      const r = verifyCertify(input);
      expect(r.ok).toBe(false);
      expect(failed(r)).toEqual(['input']);
      expect(r.checks.filter((c) => c.ok).map((c) => c.name)).toEqual(['signature', 'magic', 'type', 'name']);
      const otherName = new Uint8Array(akName);
      otherName[3]! ^= 1;
      expect(failed(verifyCertify({ ...input, objectName: otherName }))).toEqual(['input', 'name']);
    });
  });
});
