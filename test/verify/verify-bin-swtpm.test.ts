/**
 * The eve-tpm-verify executable (a real process) on what a real TPM (swtpm) made, with stock
 * tpm2-tools on the other end:
 * - quote: stock tpm2_quote output verifies (--pem and --public, -f pcrs.out and --pcr-digest);
 *   a wrong nonce, a replayed quote, modified PCR values, another selection, another AK and
 *   another hash are refused; an app-bound quote (the library's quote with appQualifyingData)
 *   verifies only with its own --app;
 * - certify: the library's certify with a plain and a bound nonce (--app, --device --app), a
 *   wrong Name refused; stock tpm2_certify's output (its fixed qualifying data) verifies;
 * - makecredential: our file → stock tpm2_activatecredential recovers the secret (RSA and ECC
 *   EKs from PEM); bad secrets, EKs and Names refused;
 * - signature: eve_tools_tpm2_sign's formats verify, a flipped bit is refused.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TPM2B_PUBLIC,
  appQualifyingData,
  certify,
  createAk,
  encode,
  formatSignature,
  parsePcrSelection,
  pcrRead,
  publicToPem,
  quote,
  quoteFiles,
  readCredentialFile,
  readPcrsOut,
  signMessage,
  withLoadedKey,
  writePcrsOut,
  type CreatedKey,
  type NamedHandle,
  type Tpm,
} from '../../src/tpm/index.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { socatAvailable, startSwtpm, swtpmAvailable, withTpmOn, type SwtpmInstance } from '../helpers/swtpm.js';
import { tpm2Tools, tpm2ToolsAvailable, workDir, type Tpm2Tools } from '../helpers/tpm-tools.js';
import { buildVerifyBin, failed, verifyInProcess, type Report, type VerifyBin } from './helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const NONCE = '0badc0ffee0ddf00d5eed5';
const FRESH = 'f00dfeedfacecafe';
/** The library's keys live under the ECC EK: no RSA key generation each time one is loaded. */
const ECC_EK = { ekType: 'ecc' } as const;
const loaded = <T>(tpm: Tpm, key: CreatedKey, fn: (h: number, k: NamedHandle) => Promise<T>): Promise<T> => withLoadedKey(tpm, key, fn, ECC_EK);
const ready = swtpmAvailable() && tpm2ToolsAvailable() && socatAvailable();

describe.skipIf(skipUnlessCI(!ready))('eve-tpm-verify on swtpm output, with stock tpm2-tools', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let tools: Tpm2Tools;
  let raw: Tpm2Tools;
  let verify: VerifyBin;
  let libAk: CreatedKey;
  let libKey: CreatedKey;
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);
  const file = (name: string): string => join(dir, name);
  const read = async (name: string): Promise<Uint8Array> => new Uint8Array(await readFile(file(name)));
  const v = (...args: string[]) => verify(dir, ...args);
  const vj = (...args: string[]) => verify.json(dir, ...args);
  /** The same in this process, for the many refusals (no process start-up each); paths made absolute. */
  const vjIn = async (...args: string[]) => {
    const abs = args.map((a) => (/^[\w.-]+\.(pem|pub|msg|sig|out|txt|tss|der|plain|bad)$/.test(a) ? file(a) : a));
    const r = await verifyInProcess(...abs, '--json');
    return { code: r.code, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
  };

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('verify-bin-'));
    tools = tpm2Tools(sw.sockPath, dir);
    raw = tpm2Tools(sw.sockPath, dir, { raw: true });
    const building = buildVerifyBin(); // meanwhile, the keys
    await tools('tpm2_pcrextend', `1:sha256=${'ab'.repeat(32)}`);
    await tools('tpm2_pcrextend', `7:sha256=${'cd'.repeat(32)}`);
    await tools('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    await tools('tpm2_readpublic', '-c', 'ek.ctx', '-f', 'pem', '-o', 'ek.pem');
    await tools('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name', '-r', 'ak.priv');
    await tools('tpm2_readpublic', '-c', 'ak.ctx', '-f', 'pem', '-o', 'ak.pem');
    await tools('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak2.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak2.pub', '-n', 'ak2.name', '-r', 'ak2.priv');
    await tools('tpm2_readpublic', '-c', 'ak2.ctx', '-f', 'pem', '-o', 'ak2.pem');
    ({ libAk, libKey } = await withLib(async (tpm) => ({ libAk: await createAk(tpm, 'ecc', ECC_EK), libKey: await createAk(tpm, 'ecc', ECC_EK) })));
    verify = await building;
    await writeFile(file('lib-ak.pem'), publicToPem(libAk.publicArea));
    await writeFile(file('lib-ak.pub'), encode(TPM2B_PUBLIC, libAk.publicArea));
  }, 180_000);

  afterAll(async () => {
    await sw?.stop();
    await removeDir?.();
    await verify?.remove();
  });

  describe('quote', () => {
    const base = ['-m', 'q.msg', '-s', 'q.sig'];

    beforeAll(async () => {
      await tools('tpm2_quote', '-c', 'ak.ctx', '-l', 'sha256:0,1,7', '-q', NONCE, '-m', 'q.msg', '-s', 'q.sig', '-o', 'pcrs.out', '-g', 'sha256');
    });

    it("stock tpm2_quote's files verify, with the AK as PEM or TPM2B_PUBLIC, pcrs.out or the digest", async () => {
      const text = await v('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '-f', 'pcrs.out');
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/^ok +signature +verifies/m);
      expect(text.stdout.trim().split('\n').at(-1)).toBe('verified: quote');
      expect(text.stderr).toBe('');

      const j = await vj('quote', '--public', 'ak.pub', ...base, '-q', NONCE, '-f', 'pcrs.out', '-g', 'sha256');
      expect(j.code).toBe(0);
      expect(j.report.ok).toBe(true);
      expect(j.report.checks.map((c) => c.name)).toEqual(['signature', 'magic', 'type', 'nonce', 'pcrSelection', 'pcrDigest', 'pcrSelection']);
      expect(j.report.pcrSelection).toBe('sha256:0,1,7');
      expect((j.report.attest as { extraData: string }).extraData).toBe(NONCE);

      const { values } = readPcrsOut(await read('pcrs.out'));
      const digest = createHash('sha256').update(Buffer.concat(values)).digest('hex');
      expect((await v('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '--pcr-digest', digest)).code).toBe(0);
      const wrong = await vjIn('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '--pcr-digest', `00${digest.slice(2)}`);
      expect([wrong.code, failed(wrong.report)]).toEqual([1, ['pcrDigest']]);
    });

    it('a wrong nonce, and a replayed quote (the verifier asks with a fresh nonce) are refused', async () => {
      const r = await v('quote', '--pem', 'ak.pem', ...base, '-q', 'ff' + NONCE.slice(2), '-f', 'pcrs.out');
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^FAIL +nonce +extraData 0badc0ffee0ddf00d5eed5 is not the nonce/m);
      expect(r.stdout.trim().split('\n').at(-1)).toBe('NOT VERIFIED: quote (1 of 7 checks failed)');
      expect(r.stderr).toBe('eve-tpm-verify: quote: not verified (nonce)\n');

      const replay = await vj('quote', '--pem', 'ak.pem', ...base, '-q', FRESH, '-f', 'pcrs.out');
      expect([replay.code, failed(replay.report)]).toEqual([1, ['nonce']]);
      await tools('tpm2_quote', '-c', 'ak.ctx', '-l', 'sha256:0,1,7', '-q', FRESH, '-m', 'q2.msg', '-s', 'q2.sig', '-o', 'pcrs2.out', '-g', 'sha256');
      expect((await v('quote', '--pem', 'ak.pem', '-m', 'q2.msg', '-s', 'q2.sig', '-q', FRESH, '-f', 'pcrs2.out')).code).toBe(0);
    });

    it('modified PCR values, another PCR selection, another AK and another hash are refused', async () => {
      const { selection, values } = readPcrsOut(await read('pcrs.out'));
      const forged = values.map((x) => Uint8Array.from(x));
      forged[1]![0]! ^= 1;
      await writeFile(file('forged.out'), writePcrsOut(selection, forged));
      const f1 = await vjIn('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '-f', 'forged.out');
      expect([f1.code, failed(f1.report)]).toEqual([1, ['pcrDigest']]);

      await writeFile(file('fewer.out'), writePcrsOut(parsePcrSelection('sha256:0,1'), values.slice(0, 2)));
      const f2 = await vjIn('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '-f', 'fewer.out');
      expect([f2.code, failed(f2.report)]).toEqual([1, ['pcrSelection', 'pcrSelection']]);

      const other = await vjIn('quote', '--pem', 'ak2.pem', ...base, '-q', NONCE, '-f', 'pcrs.out');
      expect(other.code).toBe(1);
      expect(failed(other.report)).toContain('signature');

      const hash = await vjIn('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '-f', 'pcrs.out', '-g', 'sha384');
      expect([hash.code, failed(hash.report)]).toEqual([1, ['signature']]);

      await writeFile(file('junk.pem'), '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n');
      const junk = await vjIn('quote', '--pem', 'junk.pem', ...base, '-q', NONCE, '-f', 'pcrs.out');
      expect(junk.code).toBe(1);
      expect(failed(junk.report)).toEqual(['input', 'input']);

      await writeFile(file('short.out'), (await read('pcrs.out')).subarray(0, 100));
      const short = await vjIn('quote', '--pem', 'ak.pem', ...base, '-q', NONCE, '-f', 'short.out');
      expect(short.code).toBe(1);
      expect(short.report.checks[0]!.detail).toMatch(/short\.out: pcrs\.out: 100 bytes is too short/);
    });

    it('an app-bound quote verifies only with its own --app, and says which identity was checked', async () => {
      const nonce = Buffer.from(NONCE, 'hex');
      const identity = 'tenant-a/cid=7';
      const sel = parsePcrSelection('sha256:0,1,7');
      const { pcrs, q } = await withLib(async (tpm) => {
        const pcrs = await pcrRead(tpm, sel);
        const q = await loaded(tpm, libAk, (_h, key) => quote(tpm, key, { pcrs: sel, qualifyingData: appQualifyingData('EVE-APP', identity, nonce) }));
        return { pcrs, q };
      });
      const files = quoteFiles(q.attest, q.signature);
      await writeFile(file('bq.msg'), files.msg);
      await writeFile(file('bq.sig'), files.sig);
      await writeFile(file('bq.out'), writePcrsOut(sel, pcrs.values));
      const args = ['quote', '--pem', 'lib-ak.pem', '-m', 'bq.msg', '-s', 'bq.sig', '-q', NONCE, '-f', 'bq.out'];

      const ok = await vj(...args, '--app', identity);
      expect(ok.code).toBe(0);
      expect(ok.report.binding).toEqual({ label: 'EVE-APP', identity, nonce: NONCE, qualifyingData: hex(appQualifyingData('EVE-APP', identity, nonce)) });
      const text = await v(...args, '--app', identity);
      expect(text.stdout).toContain(`bound to app identity "${identity}" (EVE-APP)`);

      for (const other of [['--app', 'tenant-b/cid=7'], ['--app', 'tenant-a'], []]) {
        const r = await vjIn(...args, ...other);
        expect([r.code, failed(r.report)], other.join(' ')).toEqual([1, ['nonce']]);
      }
    });
  });

  describe('certify', () => {
    const certifyWith = async (qualifyingData: Uint8Array, prefix: string) => {
      const r = await withLib((tpm) =>
        loaded(tpm, libAk, (_h, signer) => loaded(tpm, libKey, (_h2, object) => certify(tpm, signer, object, { qualifyingData }))),
      );
      const files = quoteFiles(r.attest, r.signature);
      await writeFile(file(`${prefix}.msg`), files.msg);
      await writeFile(file(`${prefix}.sig`), files.sig);
      return (...more: string[]) => ['certify', '-m', `${prefix}.msg`, '-s', `${prefix}.sig`, '--name', hex(libKey.name), '-q', NONCE, ...more];
    };
    const nonce = Buffer.from(NONCE, 'hex');

    it('a plain certification verifies; another Name, nonce or signer is refused', async () => {
      const args = await certifyWith(nonce, 'c');
      const ok = await vj(...args('--pem', 'lib-ak.pem'));
      expect([ok.code, ok.report.checks.map((c) => c.name)]).toEqual([0, ['signature', 'magic', 'type', 'nonce', 'name']]);
      expect((await v(...args('--public', 'lib-ak.pub'))).code).toBe(0);
      const name = hex(libKey.name);
      const otherName = await vjIn('certify', '--pem', 'lib-ak.pem', '-m', 'c.msg', '-s', 'c.sig', '--name', hex(libAk.name), '-q', NONCE);
      expect([otherName.code, failed(otherName.report)]).toEqual([1, ['name']]);
      const otherNonce = await vjIn('certify', '--pem', 'lib-ak.pem', '-m', 'c.msg', '-s', 'c.sig', '--name', name, '-q', FRESH);
      expect([otherNonce.code, failed(otherNonce.report)]).toEqual([1, ['nonce']]);
      const otherSigner = await vjIn(...args('--pem', 'ak2.pem'));
      expect([otherSigner.code, failed(otherSigner.report)]).toEqual([1, ['signature']]);
    });

    it('bound certifications: --app for EVE-APP, --device --app for EVE-APP-KEY, never crossed', async () => {
      const id = 'tenant-a';
      const app = await certifyWith(appQualifyingData('EVE-APP', id, nonce), 'ca');
      const dev = await certifyWith(appQualifyingData('EVE-APP-KEY', id, nonce), 'cd');
      const a = await vj(...app('--pem', 'lib-ak.pem', '--app', id));
      expect([a.code, a.report.binding?.label]).toEqual([0, 'EVE-APP']);
      const d = await vj(...dev('--pem', 'lib-ak.pem', '--device', '--app', id));
      expect([d.code, d.report.binding?.label, d.report.binding?.identity]).toEqual([0, 'EVE-APP-KEY', id]);
      for (const args of [app('--pem', 'lib-ak.pem', '--device', '--app', id), dev('--pem', 'lib-ak.pem', '--app', id), dev('--pem', 'lib-ak.pem', '--device', '--app', 'tenant-b'), dev('--pem', 'lib-ak.pem')]) {
        const r = await vjIn(...args);
        expect([r.code, failed(r.report)], args.join(' ')).toEqual([1, ['nonce']]);
      }
    });

    it("stock tpm2_certify's output verifies (tpm2-tools 5.x certifies with its fixed qualifying data 00ff55aa)", async () => {
      await tools('tpm2_certify', '-C', 'ak.ctx', '-c', 'ak.ctx', '-g', 'sha256', '-o', 'tc.msg', '-s', 'tc.sig');
      const args = ['certify', '--public', 'ak.pub', '-m', 'tc.msg', '-s', 'tc.sig', '--name', hex(await read('ak.name'))];
      const r = await vj(...args, '-q', '00ff55aa');
      expect([r.code, failed(r.report)]).toEqual([0, []]);
      const fresh = await vjIn(...args, '-q', NONCE);
      expect([fresh.code, failed(fresh.report)]).toEqual([1, ['nonce']]);
    });
  });

  describe('makecredential', () => {
    const activate = async (ek: string, blob: string, out: string): Promise<Uint8Array> => {
      try {
        await raw('tpm2_startauthsession', '--policy-session', '-S', 's.ctx');
        await raw('tpm2_policysecret', '-S', 's.ctx', '-c', 'e');
        await raw('tpm2_activatecredential', '-c', 'ak.ctx', '-C', ek, '-i', blob, '-o', out, '-P', 'session:s.ctx');
        await raw('tpm2_flushcontext', 's.ctx');
      } finally {
        await tools.raw('tpm2_flushcontext', '-t'); // through the bridge: flushes whatever the chain left
      }
      return read(out);
    };

    it('our credential file, from the EK PEM (RSA and ECC), is recovered by stock tpm2_activatecredential', async () => {
      await tools('tpm2_createek', '-c', 'ekecc.ctx', '-G', 'ecc', '-u', 'ekecc.pub');
      await tools('tpm2_readpublic', '-c', 'ekecc.ctx', '-f', 'pem', '-o', 'ekecc.pem');
      const name = hex(await read('ak.name'));
      for (const [type, pem, ctx] of [['rsa', 'ek.pem', 'ek.ctx'], ['ecc', 'ekecc.pem', 'ekecc.ctx']] as const) {
        const secret = Buffer.from(`a 32-octet secret for the ${type} EK`.padEnd(32, '.'));
        await writeFile(file(`${type}.secret`), secret);
        const r = await v('makecredential', '--ek', pem, '--name', name, '-s', `${type}.secret`, '-o', `${type}.blob`, '-G', type);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain(`credential for ${name} written to ${type}.blob`);
        expect(hex(await activate(ctx, `${type}.blob`, `${type}.out`))).toBe(hex(secret));
      }
      const j = await verify.json(dir, 'makecredential', '--ek-public', 'ek.pub', '--name', name, '-s', 'rsa.secret', '-o', 'pub.blob');
      expect([j.code, j.report.ok, j.report.ekFrom]).toEqual([0, true, 'TPM2B_PUBLIC']);
      expect(readCredentialFile(await read('pub.blob')).secret.length).toBe(256);
    });

    it('refuses a bad secret, a mismatched -G, a non-EK key and a malformed Name, writing nothing', async () => {
      const name = hex(await read('ak.name'));
      await writeFile(file('big.secret'), Buffer.alloc(33, 1));
      await writeFile(file('empty.secret'), Buffer.alloc(0));
      await writeFile(file('ok.secret'), Buffer.from('s'));
      const cases: [string[], number, RegExp][] = [
        [['--ek', 'ek.pem', '--name', name, '-s', 'big.secret'], 1, /secret file: 33 octets; a credential holds 1 to 32/],
        [['--ek', 'ek.pem', '--name', name, '-s', 'empty.secret'], 1, /secret file: 0 octets/],
        [['--ek', 'ek.pem', '--name', name, '-s', 'ok.secret', '-G', 'ecc'], 1, /the EK is rsa, not ecc/],
        [['--ek', 'ak2.pem', '--name', name, '-s', 'ok.secret'], 0, /written/], // a P-256 key: the PEM cannot tell an AK from an EK
        [['--ek', 'junk.pem', '--name', name, '-s', 'ok.secret'], 1, /not a PEM or DER SubjectPublicKeyInfo/],
        [['--ek', 'ek.pem', '--name', name.slice(0, -2), '-s', 'ok.secret'], 2, /--name: 31 digest octets after 0x000b, expected 32/],
        [['--ek', 'ek.pem', '--name', `0999${name.slice(4)}`, '-s', 'ok.secret'], 2, /--name: algorithm 0x0999 is not a hash/],
        [['--ek', 'ek.pem', '--name', 'xyz', '-s', 'ok.secret'], 2, /--name: 'xyz' is not hex/],
        [['--ek', 'ek.pem', '--ek-public', 'ek.pub', '--name', name, '-s', 'ok.secret'], 2, /--ek or --ek-public, not both/],
        [['--ek', 'missing.pem', '--name', name, '-s', 'ok.secret'], 6, /cannot read EK PEM file '.*missing.pem': no such file or directory/],
      ];
      // In this process (many cases); the first also as the real executable.
      const abs = (args: string[]) => args.map((a) => (/\.(pem|pub|secret)$/.test(a) ? file(a) : a));
      for (const [i, [args, code, message]] of cases.entries()) {
        const out = file(`refused-${i}.blob`);
        const r = i === 0 ? await v('makecredential', ...args, '-o', out) : await verifyInProcess('makecredential', ...abs(args), '-o', out);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
        if (code === 0) continue;
        expect(r.stderr).toMatch(message);
        expect(r.stderr.split('\n')).toHaveLength(2); // one line
        await expect(readFile(out)).rejects.toThrow(/ENOENT/);
      }
    });
  });

  describe('signature', () => {
    it("eve_tools_tpm2_sign's formats verify; a flipped bit in the message or signature is refused", async () => {
      const message = Buffer.from('a message the app signed with its AK\n'.repeat(1000));
      await writeFile(file('msg.txt'), message);
      const { digest: _digest, ...sig } = await withLib((tpm) => loaded(tpm, libAk, (_h, key) => signMessage(tpm, key, message, { publicArea: libAk.publicArea })));
      for (const format of ['plain', 'der', 'tss'] as const) {
        await writeFile(file(`sig.${format}`), formatSignature(sig, format));
        const r = await vj('signature', '--pem', 'lib-ak.pem', '-m', 'msg.txt', '-s', `sig.${format}`, '--format', format);
        expect([r.code, r.report.checks.map((c) => c.name)], format).toEqual([0, ['signature']]);
      }
      expect((await v('signature', '--public', 'lib-ak.pub', '-m', 'msg.txt', '-s', 'sig.plain')).code).toBe(0); // plain is the default
      const flipped = Buffer.from(message);
      flipped[500]! ^= 0x10;
      await writeFile(file('flipped.txt'), flipped);
      const m = await vjIn('signature', '--pem', 'lib-ak.pem', '-m', 'flipped.txt', '-s', 'sig.tss', '--format', 'tss');
      expect([m.code, failed(m.report)]).toEqual([1, ['signature']]);
      const tss = await read('sig.tss');
      tss[tss.length - 1]! ^= 1;
      await writeFile(file('sig.bad'), tss);
      const s = await vjIn('signature', '--pem', 'lib-ak.pem', '-m', 'msg.txt', '-s', 'sig.bad', '--format', 'tss');
      expect([s.code, failed(s.report)]).toEqual([1, ['signature']]);
      const other = await vjIn('signature', '--pem', 'ak2.pem', '-m', 'msg.txt', '-s', 'sig.der', '--format', 'der');
      expect([other.code, failed(other.report)]).toEqual([1, ['signature']]);
      const wrongFormat = await vjIn('signature', '--pem', 'lib-ak.pem', '-m', 'msg.txt', '-s', 'sig.tss', '--format', 'der');
      expect([wrongFormat.code, failed(wrongFormat.report)]).toEqual([1, ['input']]);
    });
  });

  it('every missing option is a usage error (exit 2, one line), never a verdict', async () => {
    const name = hex(libKey.name);
    const full: Record<string, string[][]> = {
      signature: [['--pem', 'lib-ak.pem'], ['-m', 'msg.txt'], ['-s', 'sig.plain']],
      quote: [['--pem', 'ak.pem'], ['-m', 'q.msg'], ['-s', 'q.sig'], ['-q', NONCE], ['-f', 'pcrs.out']],
      makecredential: [['--ek', 'ek.pem'], ['--name', name], ['-s', 'ok.secret'], ['-o', 'never.blob']],
      certify: [['--pem', 'lib-ak.pem'], ['-m', 'c.msg'], ['-s', 'c.sig'], ['--name', name], ['-q', NONCE]],
    };
    const abs = (a: string) => (/\.(pem|msg|sig|out|txt|plain|secret|blob)$/.test(a) ? file(a) : a);
    for (const [sub, opts] of Object.entries(full)) {
      for (let i = 0; i < opts.length; i++) {
        const args = [sub, ...opts.filter((_, j) => j !== i).flat().map(abs)];
        const r = await verifyInProcess(...args); // many cases: in this process
        expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
        expect(r.stderr.split('\n'), args.join(' ')).toHaveLength(2);
        expect(r.stdout).toBe('');
      }
    }
    for (const args of [['quote', '-m', 'q.msg', '-s', 'q.sig', '--pem', 'ak.pem', '-q', '', '-f', 'pcrs.out'], ['certify', '--device', '-m', 'c.msg', '-s', 'c.sig', '--pem', 'lib-ak.pem', '--name', name, '-q', NONCE], ['quote', '--bogus']]) {
      const r = await verifyInProcess(...args.map(abs));
      expect(r.code, args.join(' ')).toBe(2);
    }
    // and as the real executable
    expect((await v()).code).toBe(2);
    const missing = await v('quote', '--pem', 'ak.pem', '-m', 'q.msg', '-s', 'q.sig', '-f', 'pcrs.out');
    expect([missing.code, missing.stderr]).toEqual([2, 'eve-tpm-verify: -q (the nonce) is required\n']);
    const help = await v('quote', '--help');
    expect([help.code, help.stdout.includes('Example:')]).toEqual([0, true]);
    expect((await verify.json(dir, 'quote', '--pem', 'ak.pem')).report).toMatchObject({ ok: false, error: { exitCode: 2 } });
  });
});
