/**
 * The built `tpm2-decode` executable (the bundled dist/bin/tpm2-decode.cjs), run as a user runs
 * it: every recorded tpm2-tss/swtpm command and response decodes and re-encodes byte for byte,
 * a few decoded fields match what tpm2-tss decoded, and bad input fails with one clear line.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';
import { loadVectors } from '../helpers/vectors.js';

interface Vector {
  name: string;
  commandCode: string;
  command: string;
  response: string;
  decoded: Record<string, any>;
}
const { vectors } = loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm.json');
const find = (prefix: string) => vectors.find((v) => v.name.startsWith(prefix))!;

const DIST = join(REPO_ROOT, 'dist/bin/tpm2-decode.cjs');
let work: string;
let bin: string;

/** Newest modification time under the sources the executable is bundled from. */
function newestSource(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(REPO_ROOT, 'src/tpm'));
  return Math.max(newest, statSync(join(REPO_ROOT, 'src/bin/tpm2-decode.ts')).mtimeMs);
}

/**
 * Builds only this executable with the project's tsup settings for executables, into a private
 * directory (dist/ may be rebuilt or cleaned by someone else meanwhile).
 */
async function buildDecoder(outDir: string): Promise<string> {
  const { build } = await import('tsup');
  const configs = (await import('../../tsup.config.js')).default as unknown;
  const list = (Array.isArray(configs) ? configs : [configs]) as Record<string, unknown>[];
  const binConfig = list.find((c) => typeof c.entry === 'object' && c.entry !== null && Object.keys(c.entry).some((k) => k.startsWith('bin/'))) ?? {
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    noExternal: [/.*/],
    banner: { js: '#!/usr/bin/env node' },
    outExtension: () => ({ js: '.cjs' }),
  };
  await build({
    ...binConfig,
    entry: { 'bin/tpm2-decode': join(REPO_ROOT, 'src/bin/tpm2-decode.ts') },
    outDir,
    clean: false,
    dts: false,
    sourcemap: false,
    silent: true,
    config: false,
  });
  return join(outDir, 'bin/tpm2-decode.cjs');
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tpm2-decode-test-'));
  const built = existsSync(DIST) && statSync(DIST).mtimeMs >= newestSource() ? DIST : await buildDecoder(join(work, 'build'));
  // Run a copy from a directory without node_modules: the bundle must be self-contained.
  bin = join(work, 'tpm2-decode.cjs');
  copyFileSync(built, bin);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], stdin?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], { cwd: work, timeout: 20_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}

const json = (r: Result) => JSON.parse(r.stdout) as Record<string, any>;

/** Runs `fn` over `items` a few at a time (a process each; 2-core CI machines). */
async function mapLimited<T, R>(items: T[], fn: (x: T) => Promise<R>, limit = 4): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

describe('tpm2-decode --roundtrip over every recorded frame', () => {
  it('reproduces every command and response byte for byte', async () => {
    const results = await mapLimited(vectors, (v) => run([v.command, v.response, '--roundtrip', '--compact']));
    results.forEach((r, i) => {
      const v = vectors[i]!;
      expect({ name: v.name, code: r.code, stderr: r.stderr }).toEqual({ name: v.name, code: 0, stderr: '' });
      const out = json(r);
      expect(out.roundtrip).toMatchObject({
        identical: true,
        command: { identical: true, size: v.command.length / 2 },
        response: { identical: true, size: v.response.length / 2 },
      });
      expect(out.command.commandCode).toBe(v.commandCode);
    });
  });

  it('responses alone, with only --cc (the session count read from the response)', async () => {
    // One response per command code (and the error ones) keeps the number of processes down.
    const some = vectors.filter((v, i) => vectors.findIndex((w) => w.commandCode === v.commandCode) === i || v.name.includes('error'));
    const results = await mapLimited(some, (v) => run(['--response', '--cc', v.commandCode, v.response, '--roundtrip', '--compact']));
    results.forEach((r, i) => {
      expect({ name: some[i]!.name, code: r.code, stderr: r.stderr }).toEqual({ name: some[i]!.name, code: 0, stderr: '' });
      expect(json(r).roundtrip).toEqual({ identical: true, size: some[i]!.response.length / 2 });
    });
  });
});

describe('tpm2-decode fields', () => {
  it('ReadPublic: outPublic.type, attributes and names', async () => {
    const v = find('ReadPublic(0x81010000)');
    const r = await run(['--response', '--cc', 'ReadPublic', v.response]);
    expect(r.code).toBe(0);
    const out = json(r);
    const pub = out.parameters.outPublic;
    expect(pub.type).toBe(v.decoded.outPublic.type);
    expect(pub.typeName).toBe('TPM_ALG_RSA');
    expect(pub.nameAlgName).toBe('TPM_ALG_SHA256');
    expect(pub.objectAttributes).toBe(v.decoded.outPublic.objectAttributes);
    expect(pub.objectAttributesFlags).toBe('fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign');
    expect(pub.parameters.keyBits).toBe(v.decoded.outPublic.rsa.keyBits);
    expect(pub.unique).toBe(v.decoded.outPublic.rsa.modulus);
    expect(out.parameters.name).toBe(v.decoded.name);
  });

  it('Sign: command handles and session, response signature.sigAlg', async () => {
    const v = find('Sign(AK2, ticket)');
    const r = await run(['--command', v.command, '--response', v.response]);
    expect(r.code).toBe(0);
    const out = json(r);
    expect(out.command).toMatchObject({
      command: 'Sign',
      commandCode: '0x0000015d',
      tagName: 'TPM_ST_SESSIONS',
      handles: { keyHandle: '0x80000001' },
      sessions: [{ handle: '0x40000009', handleName: 'TPM_RS_PW', nonce: '', attributes: 0, hmac: '' }],
    });
    expect(out.command.parameters.digest).toBe(v.decoded.digest);
    expect(out.command.parameters.inScheme).toEqual({ scheme: 0x10, schemeName: 'TPM_ALG_NULL', details: null });
    const sig = out.response.parameters.signature;
    expect(sig.sigAlg).toBe(v.decoded.signature.sigAlg);
    expect(sig.sigAlgName).toBe('TPM_ALG_ECDSA');
    expect(sig.signature.signatureR).toBe(v.decoded.signature.r);
    expect(sig.signature.signatureS).toBe(v.decoded.signature.s);
  });

  it('an error response: rc, kind, index, base code name and tpm2-tss text', async () => {
    const v = find('Sign(restricted key, null ticket)');
    const r = await run([v.command, v.response]);
    expect(r.code).toBe(0);
    expect(json(r).response).toMatchObject({
      rc: '0x000003e0',
      error: { rc: '0x000003e0', kind: 'parameter', index: 3, baseName: 'TPM_RC_TICKET', text: 'tpm:parameter(3):invalid ticket', subject: 'validation' },
    });
    const missing = find('ReadPublic(missing handle)');
    const r2 = await run(['--response', '--cc', '0x173', missing.response]);
    expect(json(r2).error).toMatchObject({ kind: 'handle', index: 1, text: missing.decoded.text, subject: 'objectHandle' });
  });

  it('--cc takes a name, hex or decimal; hex from stdin with whitespace and 0x', async () => {
    const v = find('GetRandom');
    for (const cc of ['GetRandom', 'TPM2_GetRandom', '0x17b', String(0x17b)]) {
      const r = await run(['--response', '--cc', cc, v.response, '--compact']);
      expect(json(r).parameters.randomBytes).toBe(v.decoded.randomBytes);
    }
    const spaced = '0x' + v.command.replace(/(.{4})/g, '$1 ').toUpperCase() + '\n';
    const r = await run([], spaced);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ command: 'GetRandom', size: 12, parameters: { bytesRequested: 16 } });
  });

  it('--structure decodes one named structure', async () => {
    const v = find('Sign(AK, ticket)');
    const r = await run(['--structure', 'TPMT_SIGNATURE', v.decoded.signature.marshalled, '--roundtrip']);
    expect(r.code).toBe(0);
    const out = json(r);
    expect(out.structure).toBe('TPMT_SIGNATURE');
    expect(out.value.sigAlgName).toBe('TPM_ALG_RSASSA');
    expect(out.value.signature.sig).toBe(v.decoded.signature.sig);
    expect(out.roundtrip.identical).toBe(true);
  });

  it('--help documents the forms and exit codes', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--response');
    expect(r.stdout).toContain('--roundtrip');
    expect(r.stdout).toContain('--structure');
    expect(r.stdout).toMatch(/Exit status/);
  });
});

describe('tpm2-decode bad input: non-zero exit, one clear line', () => {
  const sign = find('Sign(AK, ticket)');
  const cases: [string, string[], string | undefined, RegExp][] = [
    ['odd-length hex', ['80010000000c0000017b001'], undefined, /odd number of hex digits/],
    ['non-hex input', ['8001zz'], undefined, /not hex/],
    ['empty stdin', [], '', /no hex digits/],
    ['unknown command code in the frame', ['80010000000e000009990000'], undefined, /unknown command code 0x00000999/],
    ['unknown --cc', ['--response', '--cc', 'Frobnicate', '8001'], undefined, /unknown command code Frobnicate/],
    ['response without --cc', ['--response', '80010000000a00000000'], undefined, /needs --cc/],
    ['unknown structure', ['--structure', 'TPMX_NOPE', '00'], undefined, /unknown structure/],
    ['unknown option', ['--frobnicate'], undefined, /unknown option/],
    [
      'truncated parameters: path and byte offset',
      [sign.command.slice(0, -8).replace(/^(.{4}).{8}/, (_m, tag) => tag + (sign.command.length / 2 - 4).toString(16).padStart(8, '0'))],
      undefined,
      /cannot decode command: Sign command\.Sign\.parameters\.validation\..*\(at byte \d+\)/,
    ],
    ['response header size lies', ['--response', '--cc', 'GetRandom', '80010000ffff00000000'], undefined, /header size 65535 does not match the 10 bytes given \(at byte 2\)/],
  ];

  it.each(cases)('%s', async (_n, args, stdin, message) => {
    const r = await run(args, stdin);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tpm2-decode: /);
    expect(lines[0]).toMatch(message);
  });
});
