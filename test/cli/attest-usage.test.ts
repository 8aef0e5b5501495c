/**
 * The attestation tools' command lines, in process with the fake client: every bad input is one
 * line on stderr, exit 2, no file written and no call to the service. What they do against the
 * real service and TPM is test/cli/attest-e2e.test.ts.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHexBytes } from '../../src/cli/args.js';
import { CliError, EXIT } from '../../src/cli/errors.js';
import { parsePcrSelectionText, pcrsOut, pcrText } from '../../src/cli/pcrs.js';
import { activatecredential } from '../../src/cli/tools/activatecredential.js';
import { certify } from '../../src/cli/tools/certify.js';
import { ekcert } from '../../src/cli/tools/ekcert.js';
import { ekpub } from '../../src/cli/tools/ekpub.js';
import { pcrread } from '../../src/cli/tools/pcrread.js';
import { quote } from '../../src/cli/tools/quote.js';
import { readPcrsOut } from '../../src/tpm/attest/formats.js';
import { readCredentialFile, writeCredentialFile } from '../../src/tpm/attest/make-credential.js';
import { run } from './fake.js';

const dir = mkdtempSync(join(tmpdir(), 'attest-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f = (n: string): string => join(dir, n);

describe('parsing', () => {
  it('hex nonces: an optional 0x, an even number of digits, 1-64 bytes', () => {
    expect(Buffer.from(parseHexBytes('0x0A1b', '-q')).toString('hex')).toBe('0a1b');
    for (const bad of ['', 'abc', 'xyz1', '0x', '12 34']) {
      expect(() => parseHexBytes(bad, '-q')).toThrow(CliError);
    }
    expect(() => parseHexBytes('00'.repeat(65), '-q')).toThrow('-q: 65 bytes; give 1 to 64 bytes of hex');
  });

  it('PCR selections as tpm2_pcrread takes them, canonical', () => {
    expect(parsePcrSelectionText('sha256:2,0,0x1+sha1:all', '-l')).toBe(`sha256:0,1,2+sha1:${Array.from({ length: 24 }, (_, i) => i).join(',')}`);
    expect(() => parsePcrSelectionText('sha256:32', '-l')).toThrow('-l: PCR selection "sha256:32": PCR 32 is beyond 31');
    expect(() => parsePcrSelectionText('md5:0', '-l')).toThrow(/unknown hash bank "md5"/);
  });

  it("tpm2_pcrread's text and pcrs.out from readings", () => {
    const pcrs = [
      { bank: 'sha256', pcr: 0, value: new Uint8Array(32) },
      { bank: 'sha256', pcr: 16, value: new Uint8Array(32).fill(0xab) },
      { bank: 'sha1', pcr: 7, value: new Uint8Array(20).fill(1) },
    ];
    expect(pcrText(pcrs)).toBe(
      `  sha256:\n    0 : 0x${'00'.repeat(32)}\n    16: 0x${'AB'.repeat(32)}\n  sha1:\n    7 : 0x${'01'.repeat(20)}\n`,
    );
    const back = readPcrsOut(pcrsOut(pcrs));
    expect(back.values.map((v) => Buffer.from(v).toString('hex'))).toEqual(pcrs.map((p) => Buffer.from(p.value).toString('hex')));
    expect(back.selection.map((s) => s.hash)).toEqual([0x000b, 0x0004]);
  });
});

describe('usage errors: exit 2, one line, nothing asked, nothing written', () => {
  const cases: Array<[string, Parameters<typeof run>[0], string[], string | RegExp]> = [
    ['quote without a nonce', quote, ['-k', '0x81010000', '-l', 'sha256:0', '-m', f('q.msg'), '-s', f('q.sig')], "-q: a nonce is required (no nonce, no quote): give the verifier's nonce in hex"],
    ['quote, bad hex', quote, ['-k', '0x81010000', '-l', 'sha256:0', '-q', 'xyz', '-m', f('q.msg'), '-s', f('q.sig')], "-q: 'xyz' is not hex; give an even number of hex digits such as 0a1b2c3d"],
    ['quote, odd hex', quote, ['-k', '0x81010000', '-l', 'sha256:0', '-q', 'abc', '-m', f('q.msg'), '-s', f('q.sig')], /^-q: 'abc' is not hex/],
    ['quote, bad selection', quote, ['-k', '0x81010000', '-l', 'sha256:0,99', '-q', '00', '-m', f('q.msg'), '-s', f('q.sig')], '-l: PCR selection "sha256:0,99": PCR 99 is beyond 31'],
    ['quote, same file twice', quote, ['-k', '0x81010000', '-l', 'sha256:0', '-q', '00', '-m', f('q.msg'), '-s', f('q.msg')], `-m and -s name the same file '${f('q.msg')}'`],
    ['quote, bad -g', quote, ['-k', '0x81010000', '-l', 'sha256:0', '-q', '00', '-m', f('q.msg'), '-s', f('q.sig'), '-g', 'md5'], /^-g: unknown hash algorithm 'md5'/],
    ['quote, no -l', quote, ['-k', '0x81010000', '-q', '00', '-m', f('q.msg'), '-s', f('q.sig')], "required option '-l, --pcr-list <selection>' not specified (see --help)"],
    ['pcrread, bad selection', pcrread, ['sha256:x'], 'SELECTION: PCR selection "sha256:x": "x" is not a PCR number'],
    ['pcrread, two selections', pcrread, ['sha256:0', 'sha1:0'], 'one SELECTION at most, got 2: sha256:0 sha1:0 (see --help)'],
    ['pcrread, bad -F', pcrread, ['-o', f('p.out'), '-F', 'yaml'], "-F: unknown PCR file format 'yaml'; use serialized or values"],
    ['certify without -k', certify, ['-c', '0x81010001', '-q', '00', '-m', f('c.msg'), '-s', f('c.sig')], '-k: the certifying key is required (or --by-device for the device key)'],
    ['certify -k with --by-device', certify, ['--by-device', '-k', '0x81010000', '-c', '0x81010001', '-q', '00', '-m', f('c.msg'), '-s', f('c.sig')], /^-k: with --by-device the device's key signs/],
    ['certify --signer-pem without --by-device', certify, ['-k', '0x81010000', '-c', '0x81010001', '-q', '00', '-m', f('c.msg'), '-s', f('c.sig'), '--signer-pem', f('d.pem')], /^--signer-pem: only with --by-device/],
    ['certify without a nonce', certify, ['-k', '0x81010000', '-c', '0x81010001', '-m', f('c.msg'), '-s', f('c.sig')], "-q: a nonce is required: give the verifier's nonce in hex"],
    ['ekpub, bad -G', ekpub, ['-G', 'dsa', '-f', f('ek.pem')], /^-G: unknown key algorithm 'dsa'/],
    ['ekcert, bad --format', ekcert, ['-o', f('ek.der'), '--format', 'tss'], "--format: unknown certificate format 'tss'; use der or pem"],
    ['activatecredential, no -i', activatecredential, ['-k', '0x81010000', '-o', f('s.bin')], "required option '-i, --credential-blob <file>' not specified (see --help)"],
  ];
  it.each(cases)('%s', async (_, def, argv, message) => {
    const r = await run(def, argv);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n');
    expect(lines).toHaveLength(2);
    const line = lines[0]!.replace(`${def.name}: `, '');
    if (typeof message === 'string') expect(line).toBe(message);
    else expect(line).toMatch(message);
    expect(r.state.calls).toEqual([]);
    for (const n of ['q.msg', 'q.sig', 'c.msg', 'c.sig', 'p.out', 'd.pem', 'ek.pem', 'ek.der', 's.bin']) expect(existsSync(f(n)), n).toBe(false);
  });

  it('--json puts the usage error on stdout too', async () => {
    const r = await run(quote, ['-k', '0x81010000', '-l', 'sha256:0', '-m', f('q.msg'), '-s', f('q.sig'), '--json']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'USAGE', exitCode: 2, kind: 'usage' } });
  });
});

describe('activatecredential reads the credential file first', () => {
  it('a file that is not tpm2_makecredential\'s: exit 6 naming it, no request, no output', async () => {
    writeFileSync(f('bad.blob'), Buffer.from('not a credential at all'));
    const r = await run(activatecredential, ['-k', '0x81010000', '-i', f('bad.blob'), '-o', f('s.bin')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr).toBe(`eve_tools_tpm2_activatecredential: '${f('bad.blob')}' is not a credential file from tpm2_makecredential: magic 0x6e6f7420, expected 0xbadcc0de (tpm2_makecredential's)\n`);
    expect(r.state.calls).toEqual([]);
    expect(existsSync(f('s.bin'))).toBe(false);
  });

  it('a missing file: exit 6', async () => {
    const r = await run(activatecredential, ['-k', '0x81010000', '-i', f('none.blob'), '-o', f('s.bin')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr).toBe(`eve_tools_tpm2_activatecredential: cannot read credential file '${f('none.blob')}': no such file or directory\n`);
    expect(r.state.calls).toEqual([]);
  });
});
