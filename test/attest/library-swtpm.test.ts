/**
 * The attestation operations on swtpm, against stock tpm2-tools on the same TPM:
 * - pcrRead (more PCRs than one PCR_Read returns) equals `tpm2_pcrread`;
 * - a quote by our library with an AK made by our library (createAk), written as tpm2_quote's
 *   files, is accepted by stock `tpm2_checkquote` with its nonce and refused with another;
 * - `tpm2_quote`'s files decode with our TPMS_ATTEST / TPMT_SIGNATURE / pcrs.out reader, and
 *   pcrs.out re-encodes byte for byte;
 * - certify: our AK certifies another of our keys; the attestation decodes and verifies;
 * - NV: an index written by tpm2_nvdefine/tpm2_nvwrite, larger than TPM_PT_NV_BUFFER_MAX, is
 *   read back chunked, equal bytes;
 * - ReadClock decodes what stock tpm2_readclock reads.
 * swtpm serves one connection at a time: the library's transport is closed before a tool runs.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TPMS_ATTEST,
  TPMT_SIGNATURE,
  TPM_ALG,
  TPM_RH,
  TPM_ST_ATTEST,
  Tpm,
  certify,
  createAk,
  decode,
  formatPcrSelection,
  nvBufferMax,
  nvRead,
  nvReadPublic,
  parsePcrSelection,
  pcrRead,
  publicToPem,
  quote,
  quoteFiles,
  readClock,
  readPcrsOut,
  verifyMessageSignature,
  withLoadedKey,
  writePcrsOut,
  parseBlobs,
  type CreatedKey,
} from '../../src/tpm/index.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance, withTpmOn } from '../helpers/swtpm.js';
import { tpm2Tools, tpm2ToolsAvailable, workDir, type Tpm2Tools } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const ready = swtpmAvailable() && tpm2ToolsAvailable();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** tpm2_pcrread's text output → "bank:pcr" → hex value. */
function parsePcrreadText(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let bank = '';
  for (const line of text.split('\n')) {
    const b = /^\s*(\w+):\s*$/.exec(line);
    if (b) {
      bank = b[1]!;
      continue;
    }
    const v = /^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (v) out.set(`${bank}:${Number(v[1])}`, v[2]!.toLowerCase());
  }
  return out;
}

describe.skipIf(skipUnlessCI(!ready))('attestation operations on swtpm, with stock tpm2-tools', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let tools: Tpm2Tools;
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);
  const file = (name: string): string => join(dir, name);
  const read = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(file(name)));
  let ak: CreatedKey;

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('attest-'));
    tools = tpm2Tools(sw.sockPath, dir);
    // PCR 16 (debug) gets non-zero values in both banks
    await tools('tpm2_pcrextend', `16:sha256=${'ab'.repeat(32)},sha1=${'cd'.repeat(20)}`);
    ak = await withLib((tpm) => createAk(tpm, 'rsa'));
  }, 120_000);

  afterAll(async () => {
    await sw?.stop();
    await removeDir?.();
  });

  afterEach(async () => {
    await withLib((tpm) => expectNothingLoaded(tpm));
  });

  it('pcrRead of more PCRs than one PCR_Read returns equals tpm2_pcrread', async () => {
    const sel = 'sha256:0,1,2,3,4,5,6,7,8,9,10,16,23+sha1:0,16';
    const ours = await withLib((tpm) => pcrRead(tpm, sel));
    expect(ours.values.length).toBe(15);
    const text = (await tools('tpm2_pcrread', sel)).stdout;
    const theirs = parsePcrreadText(text);
    expect(theirs.size).toBe(15);
    for (const [hash, name] of [
      [TPM_ALG.SHA256, 'sha256'],
      [TPM_ALG.SHA1, 'sha1'],
    ] as const) {
      for (const [pcr, value] of ours.banks.get(hash)!) expect(hex(value), `${name}:${pcr}`).toBe(theirs.get(`${name}:${pcr}`));
    }
    expect(hex(ours.banks.get(TPM_ALG.SHA256)!.get(16)!)).not.toBe('00'.repeat(32));
    expect(formatPcrSelection(ours.selection)).toBe(sel);
  });

  it('pcrRead refuses a bad selection and an unallocated bank, clearly', async () => {
    await expect(withLib((tpm) => pcrRead(tpm, 'sha256:0,99'))).rejects.toThrow(/PCR 99 is beyond 31/);
    await expect(withLib((tpm) => pcrRead(tpm, 'md5:0'))).rejects.toThrow(/unknown hash bank "md5"/);
    await expect(withLib((tpm) => pcrRead(tpm, 'sha3_256:0'))).rejects.toThrow();
  });

  it('our quote with our AK is accepted by tpm2_checkquote, and refused with another nonce', async () => {
    const nonce = Uint8Array.from(Buffer.from('0011223344556677889900aabbccddeeff', 'hex'));
    const sel = parsePcrSelection('sha256:0,1,2,16+sha1:0,16');
    const { pcrs, q } = await withLib(async (tpm) => {
      const pcrs = await pcrRead(tpm, sel);
      const q = await withLoadedKey(tpm, ak, (_h, key) => quote(tpm, key, { pcrs: sel, qualifyingData: nonce }));
      return { pcrs, q };
    });
    expect(q.decoded.type).toBe(TPM_ST_ATTEST.QUOTE);
    expect(hex(q.decoded.extraData)).toBe(hex(nonce));
    expect(hex(q.decoded.attested.pcrDigest)).toBe(hex(sha256(Buffer.concat(pcrs.values))));
    const files = quoteFiles(q.attest, q.signature);
    await writeFile(file('quote.msg'), files.msg);
    await writeFile(file('quote.sig'), files.sig);
    await writeFile(file('pcrs.out'), writePcrsOut(sel, pcrs.values));
    await writeFile(file('ak.pem'), publicToPem(parseBlobs(ak).publicArea));
    const args = ['-u', 'ak.pem', '-m', 'quote.msg', '-s', 'quote.sig', '-f', 'pcrs.out', '-g', 'sha256'];
    const ok = await tools.raw('tpm2_checkquote', ...args, '-q', hex(nonce));
    expect(ok.code, ok.stderr).toBe(0);
    const bad = await tools.raw('tpm2_checkquote', ...args, '-q', 'ff' + hex(nonce).slice(2));
    expect(bad.code).not.toBe(0);
    // other PCR values than quoted: refused
    const forged = pcrs.values.map((v) => Uint8Array.from(v));
    forged[0]![0] = forged[0]![0]! ^ 1;
    await writeFile(file('forged.out'), writePcrsOut(sel, forged));
    const bad2 = await tools.raw('tpm2_checkquote', '-u', 'ak.pem', '-m', 'quote.msg', '-s', 'quote.sig', '-f', 'forged.out', '-g', 'sha256', '-q', hex(nonce));
    expect(bad2.code).not.toBe(0);
  });

  it("tpm2_quote's files decode with our TPMS_ATTEST, TPMT_SIGNATURE and pcrs.out reader", async () => {
    await tools('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    await tools('tpm2_createak', '-C', 'ek.ctx', '-c', 'tak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'tak.pub', '-n', 'tak.name');
    await tools('tpm2_quote', '-c', 'tak.ctx', '-l', 'sha256:0,1,2,16+sha1:16', '-q', 'c0ffee', '-m', 'tq.msg', '-s', 'tq.sig', '-o', 'tq.pcrs', '-g', 'sha256');
    const msg = await read('tq.msg');
    const a = decode(TPMS_ATTEST, msg);
    expect(a.type).toBe(TPM_ST_ATTEST.QUOTE);
    if (a.type !== TPM_ST_ATTEST.QUOTE) return;
    expect(hex(a.extraData)).toBe('c0ffee');
    expect(hex(a.qualifiedSigner.subarray(0, 2))).toBe('000b');
    const sig = decode(TPMT_SIGNATURE, await read('tq.sig'));
    expect(sig.sigAlg).toBe(TPM_ALG.RSASSA);
    const pcrsBytes = await read('tq.pcrs');
    const p = readPcrsOut(pcrsBytes);
    expect(formatPcrSelection(p.selection)).toBe('sha256:0,1,2,16+sha1:16');
    expect(hex(a.attested.pcrDigest)).toBe(hex(sha256(Buffer.concat(p.values))));
    expect(hex(writePcrsOut(p.selection, p.values))).toBe(hex(pcrsBytes));
    // and the values are the TPM's, as our pcrRead sees them
    const ours = await withLib((tpm) => pcrRead(tpm, p.selection));
    expect(ours.values.map(hex)).toEqual(p.values.map(hex));
    // tpm2_certify's attestation (the AK certifying itself) decodes too; tpm2-tools 5.4's
    // tpm2_certify has no option for qualifying data, so extraData is empty
    await tools('tpm2_certify', '-C', 'tak.ctx', '-c', 'tak.ctx', '-o', 'tc.attest', '-s', 'tc.sig', '-g', 'sha256');
    const c = decode(TPMS_ATTEST, await read('tc.attest'));
    expect(c.type).toBe(TPM_ST_ATTEST.CERTIFY);
    if (c.type !== TPM_ST_ATTEST.CERTIFY) return;
    expect(hex(c.extraData)).toBe('00ff55aa');
    expect(hex(c.attested.name)).toBe(hex(await read('tak.name')));
    expect(decode(TPMT_SIGNATURE, await read('tc.sig')).sigAlg).toBe(TPM_ALG.RSASSA);
  });

  it('certify: our AK certifies another of our keys; the attestation decodes and verifies', async () => {
    const other = await withLib((tpm) => createAk(tpm, 'ecc'));
    const nonce = new TextEncoder().encode('certify-nonce');
    const r = await withLib((tpm) =>
      withLoadedKey(tpm, ak, (_h, signer) => withLoadedKey(tpm, other, (_h2, object) => certify(tpm, signer, object, { qualifyingData: nonce }))),
    );
    expect(r.decoded.type).toBe(TPM_ST_ATTEST.CERTIFY);
    expect(hex(r.decoded.extraData)).toBe(hex(nonce));
    const { objectName } = await import('../../src/tpm/index.js');
    expect(hex(r.decoded.attested.name)).toBe(hex(objectName(parseBlobs(other).publicArea)));
    expect(hex(r.decoded.qualifiedSigner.subarray(0, 2))).toBe('000b');
    expect(verifyMessageSignature(parseBlobs(ak).publicArea, r.attest, r.signature)).toBe(true);
    const tampered = Uint8Array.from(r.attest);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    expect(verifyMessageSignature(parseBlobs(ak).publicArea, tampered, r.signature)).toBe(false);
  });

  it('NV: an index larger than TPM_PT_NV_BUFFER_MAX, written by tpm2_nvwrite, is read back chunked', async () => {
    const max = await withLib((tpm) => nvBufferMax(tpm));
    const size = max + 517; // NV indices are at most MAX_NV_INDEX_SIZE (2048 on swtpm): one buffer and a bit
    const data = Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff);
    await writeFile(file('nv.bin'), data);
    const index = 0x01500020;
    await tools('tpm2_nvdefine', `0x${index.toString(16)}`, '-C', 'o', '-s', String(size), '-a', 'ownerread|ownerwrite|authread|authwrite');
    try {
      await tools('tpm2_nvwrite', `0x${index.toString(16)}`, '-C', 'o', '-i', 'nv.bin');
      await withLib(async (tpm) => {
        const pub = await nvReadPublic(tpm, index);
        expect(pub.nvPublic.dataSize).toBe(size);
        expect(pub.nvPublic.nvIndex).toBe(index);
        expect(hex(await nvRead(tpm, index))).toBe(hex(data));
        const part = await nvRead(tpm, index, { authHandle: TPM_RH.OWNER, offset: max - 10, size: 300, chunkSize: 64 });
        expect(hex(part)).toBe(hex(data.subarray(max - 10, max + 290)));
        await expect(nvRead(tpm, index, { offset: size - 1, size: 2 })).rejects.toThrow(/goes beyond index 0x01500020/);
        await expect(nvRead(tpm, 0x81000001)).rejects.toThrow(/not an NV index handle/);
      });
      const text = (await tools('tpm2_nvreadpublic', `0x${index.toString(16)}`)).stdout;
      expect(text).toContain(`size: ${size}`);
    } finally {
      await tools('tpm2_nvundefine', `0x${index.toString(16)}`, '-C', 'o');
    }
  });

  it('ReadClock decodes what tpm2_readclock reads, between two of its readings', async () => {
    // tpm2_readclock prints the same TPMS_TIME_INFO as YAML: an independent decoder. The clock
    // only moves forward, so ours lies between a reading before and one after; the counts and
    // the safe flag are equal.
    const stock = async (): Promise<{ time: bigint; clock: bigint; resetCount: number; restartCount: number; safe: boolean }> => {
      const y = (await tools('tpm2_readclock')).stdout;
      const field = (name: string): string => {
        const m = new RegExp(`^\\s*${name}:\\s*(\\S+)\\s*$`, 'm').exec(y);
        if (!m) throw new Error(`tpm2_readclock printed no ${name}: ${y}`);
        return m[1]!;
      };
      return { time: BigInt(field('time')), clock: BigInt(field('clock')), resetCount: Number(field('reset_count')), restartCount: Number(field('restart_count')), safe: field('safe') === 'yes' };
    };
    const before = await stock();
    const t = await withLib((tpm) => readClock(tpm));
    const after = await stock();
    expect(typeof t.time).toBe('bigint');
    expect([before.time <= t.time, t.time <= after.time, before.clock <= t.clockInfo.clock, t.clockInfo.clock <= after.clock]).toEqual([true, true, true, true]);
    expect({ resetCount: t.clockInfo.resetCount, restartCount: t.clockInfo.restartCount, safe: t.clockInfo.safe }).toEqual({
      resetCount: after.resetCount,
      restartCount: after.restartCount,
      safe: after.safe,
    });
  });
});
