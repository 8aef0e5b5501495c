/**
 * Unit tests of the tools without a service: argument parsing, settings precedence, atomic
 * output, progress display, error mapping, and each tool run in-process against a fake client.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseHandle, parseHash, parseKeyType, parseSeconds, parseSignatureFormat, parseUint } from '../../src/cli/args.js';
import { DEFAULT_SERVICE, resolveService } from '../../src/cli/config.js';
import { CliError, EXIT } from '../../src/cli/errors.js';
import { checkOutputPath, writeFileAtomic } from '../../src/cli/output.js';
import { formatBytes, formatDuration, formatProgress, Progress } from '../../src/cli/progress.js';
import { toCliError } from '../../src/cli/service.js';
import { ServiceError, ServiceUnreachableError } from '../../src/service/protocol/errors.js';
import { evictaik } from '../../src/cli/tools/evictaik.js';
import { genaik } from '../../src/cli/tools/genaik.js';
import { listkeys } from '../../src/cli/tools/listkeys.js';
import { pubgetaik } from '../../src/cli/tools/pubgetaik.js';
import { sign } from '../../src/cli/tools/sign.js';
import { FakeServiceError, FakeUnreachable, newState, run } from './fake.js';

const dir = mkdtempSync(join(tmpdir(), 'cli-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function usage(fn: () => unknown): CliError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(EXIT.USAGE);
    return e as CliError;
  }
  throw new Error('expected a usage error');
}

describe('argument values', () => {
  it('reads numbers in hex and decimal, not octal', () => {
    expect(parseUint('0x1F')).toBe(31);
    expect(parseUint('010')).toBe(10);
    expect(parseUint('0x100000000')).toBeUndefined();
    expect(parseUint('12a')).toBeUndefined();
    expect(parseUint('-1')).toBeUndefined();
  });
  it('key algorithms: TPM_ALG_ID in any notation, or names', () => {
    for (const v of ['0x1', '0x0001', '1', 'rsa', 'RSA']) expect(parseKeyType(v)).toBe('rsa');
    for (const v of ['0x23', '0x0023', '35', 'ecc', 'ECDSA']) expect(parseKeyType(v)).toBe('ecc');
    expect(usage(() => parseKeyType('0x25')).message).toBe(
      "-g: TPM_ALG_ID 0x0025 is not a supported key algorithm; use one of 0x0001 (rsa), 0x0023 (ecc)",
    );
    expect(usage(() => parseKeyType('dsa')).message).toMatch(/unknown key algorithm 'dsa'/);
  });
  it('hash algorithms', () => {
    expect(parseHash('0x00B')).toBe('sha256');
    expect(parseHash('0xb')).toBe('sha256');
    expect(parseHash('11')).toBe('sha256');
    expect(parseHash('0x4')).toBe('sha1');
    expect(parseHash('0xC')).toBe('sha384');
    expect(parseHash('0x0D')).toBe('sha512');
    expect(parseHash('SHA-384')).toBe('sha384');
    expect(usage(() => parseHash('0x12')).message).toMatch(/0x0012 is not a supported hash algorithm; use one of 0x0004 \(sha1\)/);
  });
  it('handles are canonicalised to 0x%08x', () => {
    expect(parseHandle('0x81010000')).toBe('0x81010000');
    expect(parseHandle('2164326400')).toBe('0x81010000');
    expect(parseHandle('0X8101000A')).toBe('0x8101000a');
    expect(usage(() => parseHandle('handle')).message).toBe("-k: 'handle' is not a handle; give a number such as 0x81010000");
    usage(() => parseHandle('0x181010000'));
  });
  it('formats and seconds', () => {
    expect(parseSignatureFormat('TSS')).toBe('tss');
    usage(() => parseSignatureFormat('pem'));
    expect(parseSeconds('1.5')).toBe(1500);
    usage(() => parseSeconds('0'));
    usage(() => parseSeconds('abc'));
  });
});

describe('service settings: flag > env > config file > default', () => {
  const cfg = join(dir, 'config.json');
  const secretFile = join(dir, 'secret');
  writeFileSync(cfg, JSON.stringify({ service: 'tcp:127.0.0.1:9999', secret: 'from-config' }), { mode: 0o600 });
  chmodSync(cfg, 0o600);
  writeFileSync(secretFile, 'from-file\n', { mode: 0o600 });
  chmodSync(secretFile, 0o600);

  it('defaults to vsock CID 2 port 8877 with no config (EVE_TOOLS_CONFIG=none: no file is read)', () => {
    const s = resolveService({}, { EVE_TOOLS_CONFIG: 'none' });
    expect(s).toMatchObject({ address: DEFAULT_SERVICE, addressSource: 'default', secret: undefined, warnings: [] });
  });
  it('a config file EVE_TOOLS_CONFIG names must exist (a typo is not silently "no config")', () => {
    const missing = join(dir, 'missing.json');
    expect(usage(() => resolveService({}, { EVE_TOOLS_CONFIG: missing })).message).toBe(
      `config file ${missing} (EVE_TOOLS_CONFIG) does not exist; set EVE_TOOLS_CONFIG=none to use no config file`,
    );
    // Not read at all when flags and variables leave nothing open.
    expect(resolveService({}, { EVE_TOOLS_CONFIG: missing, EVE_TOOLS_SERVICE: 'unix:/run/x.sock', EVE_TOOLS_SECRET: 's' }).addressSource).toBe('env');
  });
  it('config file beats the default', () => {
    const s = resolveService({}, { EVE_TOOLS_CONFIG: cfg });
    expect(s).toMatchObject({ address: 'tcp:127.0.0.1:9999', addressSource: 'config', secret: 'from-config', warnings: [] });
  });
  it('environment beats the config file', () => {
    const s = resolveService({}, { EVE_TOOLS_CONFIG: cfg, EVE_TOOLS_SERVICE: 'unix:/run/x.sock', EVE_TOOLS_SECRET: 'env' });
    expect(s).toMatchObject({ address: 'unix:/run/x.sock', addressSource: 'env', secret: 'env', secretSource: 'EVE_TOOLS_SECRET' });
  });
  it('flags beat the environment; the secret file loses its final newline', () => {
    const s = resolveService(
      { service: 'vsock:3:1234', secretFile },
      { EVE_TOOLS_CONFIG: cfg, EVE_TOOLS_SERVICE: 'unix:/run/x.sock', EVE_TOOLS_SECRET: 'env' },
    );
    expect(s).toMatchObject({ address: 'vsock:3:1234', addressSource: 'flag', secret: 'from-file' });
  });
  it('settings left open are taken from the config file one by one', () => {
    const s = resolveService({}, { EVE_TOOLS_CONFIG: cfg, EVE_TOOLS_SERVICE: 'unix:/run/x.sock' });
    expect(s).toMatchObject({ address: 'unix:/run/x.sock', secret: 'from-config', secretSource: `config file ${cfg}` });
  });
  it('warns about a config file readable by others', () => {
    const open = join(dir, 'open.json');
    writeFileSync(open, '{"secret":"s"}');
    chmodSync(open, 0o644);
    const s = resolveService({}, { EVE_TOOLS_CONFIG: open });
    expect(s.warnings).toEqual([`warning: config file ${open} is readable by group or others (mode 0644); run: chmod 600 ${open}`]);
  });
  it('rejects a config file that is not JSON, and bad addresses wherever they come from', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{service:');
    chmodSync(bad, 0o600);
    expect(usage(() => resolveService({}, { EVE_TOOLS_CONFIG: bad })).message).toMatch(/^config file .*bad\.json is not valid JSON/);
    expect(usage(() => resolveService({ service: 'vsock:2' }, {})).message).toBe('--service: bad vsock address vsock:2: expected vsock:CID:PORT');
    expect(usage(() => resolveService({}, { EVE_TOOLS_SERVICE: 'http://x' })).message).toMatch(/^EVE_TOOLS_SERVICE: unknown address http:\/\/x: use unix:PATH/);
    for (const ok of ['tcp:[::1]:8877', 'tcp:localhost:1', 'unix:/a b', 'vsock:4294967295:8877']) {
      expect(resolveService({ service: ok }, { EVE_TOOLS_CONFIG: 'none' }).address).toBe(ok);
    }
  });
  it('a missing secret file is a file error', () => {
    try {
      resolveService({ secretFile: join(dir, 'nope') }, {});
      throw new Error('no error');
    } catch (e) {
      expect((e as CliError).exitCode).toBe(EXIT.FILE);
      expect((e as CliError).message).toMatch(/^cannot read secret file '.*nope': no such file or directory$/);
    }
  });
});

describe('atomic output', () => {
  it('writes, replaces, and leaves no temp file', async () => {
    const p = join(dir, 'out', 'sig.bin');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'out'));
    await writeFileAtomic(p, Buffer.from('one'), 'signature file');
    await writeFileAtomic(p, Buffer.from('two'), 'signature file');
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(readdirSync(join(dir, 'out'))).toEqual(['sig.bin']);
  });
  it('refuses a directory or a missing directory before any work', () => {
    expect(() => checkOutputPath(dir, 'signature file')).toThrow(/cannot write signature file '.*': is a directory/);
    expect(() => checkOutputPath(join(dir, 'no', 'x'), 'signature file')).toThrow(/: no such file or directory$/);
    expect(() => checkOutputPath(join(dir, 'new.bin'), 'signature file')).not.toThrow();
    expect(() => checkOutputPath('-', 'signature file')).not.toThrow();
  });
});

describe('progress line', () => {
  it('formats sizes, durations and the line', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200.0 MiB');
    expect(formatDuration(7_400)).toBe('0:07');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    expect(formatProgress('sending message', { sent: 50 << 20, total: 200 << 20, elapsedMs: 2000, waiting: false })).toBe(
      'sending message: 50.0 MiB / 200.0 MiB (25%), 25.0 MiB/s, 0:06 left',
    );
    expect(formatProgress('sending message', { sent: 3 << 20, total: undefined, elapsedMs: 1000, waiting: false })).toBe(
      'sending message: 3.0 MiB sent, 3.0 MiB/s',
    );
    expect(formatProgress('x', { sent: 10, total: 10, elapsedMs: 1000, waiting: true })).toMatch(/waiting for the TPM$/);
  });
  it('draws on a terminal after the delay, and wipes itself', () => {
    vi.useFakeTimers();
    try {
      const writes: string[] = [];
      const p = new Progress({ label: 'sending message', total: 100, stream: { isTTY: true, write: (s) => writes.push(s) }, delayMs: 10, intervalMs: 10 });
      p.update(40);
      vi.advanceTimersByTime(9);
      expect(writes).toEqual([]); // not before the delay
      vi.advanceTimersByTime(1);
      expect(writes).toHaveLength(1);
      expect(writes[0]).toMatch(/^\rsending message: 40 B \/ 100 B \(40%\)/);
      vi.advanceTimersByTime(20);
      expect(writes).toHaveLength(3); // then once per interval
      p.end();
      expect(writes).toHaveLength(4);
      expect(writes.at(-1)).toMatch(/^\r +\r$/);
      vi.advanceTimersByTime(100);
      expect(writes).toHaveLength(4); // and stops
    } finally {
      vi.useRealTimers();
    }
  });
  it('prints nothing when not a terminal, or before the delay', () => {
    vi.useFakeTimers();
    try {
      const writes: string[] = [];
      const a = new Progress({ label: 'x', total: 100, stream: { isTTY: false, write: (s) => writes.push(s) }, delayMs: 0 });
      const b = new Progress({ label: 'x', total: 100, stream: { isTTY: true, write: (s) => writes.push(s) }, delayMs: 1000 });
      vi.advanceTimersByTime(999);
      a.end();
      b.end();
      vi.advanceTimersByTime(2000);
      expect(writes).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('error mapping', () => {
  const settings = { address: 'unix:/run/eve.sock', addressSource: 'env' as const, secret: 's', secretSource: 'EVE_TOOLS_SECRET', warnings: [] };
  const map = (e: unknown, handle?: string) => toCliError(e, { settings, ...(handle ? { handle } : {}) });
  it.each([
    [new FakeUnreachable('connect ECONNREFUSED'), EXIT.UNREACHABLE, 'cannot reach the TPM service at unix:/run/eve.sock (from EVE_TOOLS_SERVICE): connect ECONNREFUSED'],
    [new FakeServiceError(401, 'UNAUTHENTICATED', 'Unknown secret.'), EXIT.AUTH, "the TPM service did not accept this application's identity: Unknown secret; the secret came from EVE_TOOLS_SECRET"],
    [new FakeServiceError(403, 'FORBIDDEN', 'not yours'), EXIT.AUTH, 'key 0x81000001 is not yours: only keys this application created can be used'],
    [new FakeServiceError(403, 'QUOTA_EXCEEDED', 'at most 8 keys'), EXIT.CONFLICT, 'key quota reached: at most 8 keys; delete a key with eve_tools_tpm2_evictaik first'],
    [new FakeServiceError(409, 'CONFLICT', 'handle pool exhausted'), EXIT.CONFLICT, 'handle pool exhausted'],
    [new FakeServiceError(422, 'UNSUPPORTED', 'key signs sha256 only'), EXIT.UNSUPPORTED, 'not supported: key signs sha256 only'],
    [new FakeServiceError(429, 'BUSY', 'too many requests'), EXIT.BUSY, 'the TPM service is busy: too many requests'],
    [new FakeServiceError(503, 'TPM_UNAVAILABLE', 'no TPM'), EXIT.TPM, 'the TPM service cannot reach its TPM: no TPM'],
    [new FakeServiceError(502, 'TPM_ERROR', 'TPM failed', '0x000001d5', 'tpm:parameter(1):structure is the wrong size'), EXIT.TPM, 'TPM error: tpm:parameter(1):structure is the wrong size (rc 0x000001d5)'],
    [new FakeServiceError(504, 'DEADLINE', 'deadline passed'), EXIT.TIMEOUT, 'timed out: deadline passed'],
    [new FakeServiceError(400, 'BAD_REQUEST', 'bad handle'), EXIT.USAGE, 'the service rejected the request: bad handle'],
    [new FakeServiceError(500, 'INTERNAL', 'oops'), EXIT.GENERAL, 'the TPM service failed: oops'],
    [new FakeServiceError(418, 'TEAPOT', 'short and stout'), EXIT.USAGE, 'the service rejected the request: short and stout'],
    [new ServiceUnreachableError('unix:/run/eve.sock', 'ECONNREFUSED', 'cannot reach the TPM service at unix:/run/eve.sock: connection refused (is eve-tpm-service running?)'), EXIT.UNREACHABLE, 'cannot reach the TPM service at unix:/run/eve.sock (from EVE_TOOLS_SERVICE): connection refused (is eve-tpm-service running?)'],
    [new ServiceUnreachableError('unix:/run/eve.sock', 'ETIMEDOUT', 'cannot reach the TPM service at unix:/run/eve.sock: no answer within 100 ms'), EXIT.TIMEOUT, 'timed out waiting for the TPM service at unix:/run/eve.sock (from EVE_TOOLS_SERVICE): no answer within 100 ms'],
    [new ServiceError(502, 'TPM_ERROR', 'the TPM refused', { tpmRc: '0x00000922', tpmText: 'tpm:warn(2.0): out of memory for object contexts' }), EXIT.TPM, 'TPM error: tpm:warn(2.0): out of memory for object contexts (rc 0x00000922)'],
    [new ServiceError(429, 'BUSY', 'too many requests from you', { retryAfter: 1 }), EXIT.BUSY, 'the TPM service is busy (retry after 1 s): too many requests from you'],
    [Object.assign(new Error('timeout'), { name: 'TimeoutError' }), EXIT.TIMEOUT, 'timed out waiting for the TPM service at unix:/run/eve.sock (from EVE_TOOLS_SERVICE)'],
  ])('%s', (e, code, message) => {
    const c = map(e, '0x81000001');
    expect(c.exitCode).toBe(code);
    expect(c.message).toBe(message);
  });
});

describe('tools in-process with a fake service', () => {
  it('genaik prints the proposal line', async () => {
    const r = await run(genaik, ['-g', '0x1']);
    expect(r).toMatchObject({ code: 0, stdout: 'AIK Pair generated at persistent handle 0x81010000\n', stderr: '' });
    expect(r.state.calls).toEqual(['createKey rsa']);
  });
  it('genaik -G passes the hash, --json gives an object', async () => {
    const r = await run(genaik, ['-g', 'ecc', '-G', '0xC', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ handle: '0x81010000', type: 'ecc', hashAlg: 'sha384' });
  });
  it('unknown flag: one line, exit 2, no service call', async () => {
    const r = await run(genaik, ['-g', '0x1', '--bogus']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toBe("eve_tools_tpm2_genaik: unknown option '--bogus' (see --help)\n");
    expect(r.state.calls).toEqual([]);
  });
  it('a misspelt flag is named, even when a required option is then missing', async () => {
    const r = await run(sign, ['-k', '0x81010000', '--mesage', 'm.txt', '-s', 'x']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toBe("eve_tools_tpm2_sign: unknown option '--mesage' (Did you mean --message?) (see --help)\n");
    expect(r.state.calls).toEqual([]);
  });
  it('missing required option and excess argument', async () => {
    const a = await run(sign, ['-k', '0x81010000', '-s', 'x']);
    expect(a.code).toBe(EXIT.USAGE);
    expect(a.stderr).toBe("eve_tools_tpm2_sign: required option '-m, --message <file>' not specified (see --help)\n");
    const b = await run(evictaik, ['-k', '1', 'extra']);
    expect(b.code).toBe(EXIT.USAGE);
    expect(b.stderr.split('\n')).toHaveLength(2);
  });
  it('--help and --version exit 0 on stdout', async () => {
    const h = await run(sign, ['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: eve_tools_tpm2_sign \[options\]/);
    expect(h.stdout).toMatch(/EVE_TOOLS_SERVICE/);
    const v = await run(sign, ['--version']);
    expect(v).toMatchObject({ code: 0, stdout: expect.stringMatching(/^eve_tools_tpm2_sign \d+\.\d+\.\d+\n$/) });
  });
  it('--json errors: stderr line plus an object on stdout', async () => {
    const state = newState();
    state.fail = new FakeUnreachable('no vsock');
    const r = await run(listkeys, ['--json'], { state });
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.stderr).toBe('eve_tools_tpm2_listkeys: cannot reach the TPM service at vsock:2:8877: no vsock\n');
    expect(JSON.parse(r.stdout)).toEqual({
      error: { code: 'UNREACHABLE', exitCode: 4, kind: 'unreachable', message: 'cannot reach the TPM service at vsock:2:8877: no vsock' },
    });
  });
  it('the client gets the resolved address, secret and timeout', async () => {
    const r = await run(listkeys, ['--service', 'tcp:127.0.0.1:1', '--timeout', '2.5'], { env: { EVE_TOOLS_SECRET: 'sek' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('no keys (create one with eve_tools_tpm2_genaik)\n');
    expect(r.state.options).toEqual([{ address: 'tcp:127.0.0.1:1', secret: 'sek', timeoutMs: 2500 }]);
  });
  it('listkeys table, evictaik line', async () => {
    const state = newState();
    await run(genaik, ['-g', '0x1'], { state });
    await run(genaik, ['-g', '0x23'], { state });
    const l = await run(listkeys, [], { state });
    expect(l.stdout.split('\n')[0]).toBe('HANDLE      TYPE  HASH    CREATED');
    expect(l.stdout).toMatch(/0x81010001  ecc   sha256  2025/);
    const e = await run(evictaik, ['-k', '0x81010000'], { state });
    expect(e).toMatchObject({ code: 0, stdout: 'AIK Pair evicted from persistent handle 0x81010000\n' });
    const again = await run(evictaik, ['-k', '0x81010000'], { state });
    expect(again.code).toBe(EXIT.AUTH);
    expect(again.stderr).toBe('eve_tools_tpm2_evictaik: key 0x81010000 is not yours: only keys this application created can be used\n');
  });
  it('pubgetaik writes PEM to a file, to stdout, and refuses binary on a terminal', async () => {
    const state = newState();
    await run(genaik, [], { state });
    const f = join(dir, 'ak.pem');
    const a = await run(pubgetaik, ['-k', '0x81010000', '-f', f], { state });
    expect(a).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(f, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const b = await run(pubgetaik, ['-k', '0x81010000'], { state });
    expect(b.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const c = await run(pubgetaik, ['-k', '0x81010000', '--format', 'der'], { state, stdoutTTY: true });
    expect(c.code).toBe(EXIT.USAGE);
    const d = await run(pubgetaik, ['-k', '0x81010000', '--format', 'der', '--json'], { state });
    expect(JSON.parse(d.stdout)).toEqual({ handle: '0x81010000', format: 'der', data: 'AQID' });
  });
  it('sign streams a file, defaults the hash to the key, writes the signature', async () => {
    const state = newState();
    await run(genaik, [], { state });
    const m = join(dir, 'message.txt');
    writeFileSync(m, 'hello');
    const s = join(dir, 'sign.bin');
    const r = await run(sign, ['-k', '0x81010000', '-m', m, '-s', s], { state });
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(s, 'utf8')).toBe('SIG');
    // A small file: one request, the hash left to the key (no preliminary getKey).
    expect(state.calls.slice(1)).toEqual(["sign 0x81010000 (the key's hash) plain"]);
    expect(state.signed.at(-1)?.toString()).toBe('hello');
  });
  it('sign -m - reads stdin; -s - writes stdout', async () => {
    const state = newState();
    await run(genaik, [], { state });
    const r = await run(sign, ['-k', '0x81010000', '-m', '-', '-g', '0xB', '-s', '-'], { state, stdin: 'from stdin' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('SIG');
    expect(state.signed.at(-1)?.toString()).toBe('from stdin');
  });
  it('sign with a hash the key does not have: exit 5, one line, nothing sent or written', async () => {
    const state = newState();
    await run(genaik, ['-g', '0x1'], { state });
    const m = join(dir, 'message.txt');
    writeFileSync(m, 'hello');
    const s = join(dir, 'never.bin');
    const r = await run(sign, ['-k', '0x81010000', '-m', m, '-g', '0x00C', '-s', s], { state });
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(r.stderr).toBe(
      'eve_tools_tpm2_sign: key 0x81010000 signs with sha256 only (an AK\'s hash is fixed when it is created), not sha384; create a sha384 key with: eve_tools_tpm2_genaik -g rsa -G 0xC\n',
    );
    expect(state.signed).toEqual([]);
    expect(() => readFileSync(s)).toThrow();
  });
  it('sign: missing message file is exit 6 before any service call', async () => {
    const r = await run(sign, ['-k', '0x81010000', '-m', join(dir, 'nope.txt'), '-s', join(dir, 'x.bin')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr).toMatch(/^eve_tools_tpm2_sign: cannot read message file '.*nope\.txt': no such file or directory\n$/);
    expect(r.state.calls).toEqual([]);
  });
  it('sign: a failure keeps an existing signature file untouched', async () => {
    const state = newState();
    const m = join(dir, 'message.txt');
    writeFileSync(m, 'hello');
    const s = join(dir, 'keep.bin');
    writeFileSync(s, 'OLD');
    state.fail = new FakeServiceError(502, 'TPM_ERROR', 'x', '0x00000101', 'tpm:error(2.0): TPM_RC_FAILURE');
    const r = await run(sign, ['-k', '0x81010000', '-m', m, '-s', s], { state });
    expect(r.code).toBe(EXIT.TPM);
    expect(r.stderr).toBe('eve_tools_tpm2_sign: TPM error: tpm:error(2.0): TPM_RC_FAILURE (rc 0x00000101)\n');
    expect(readFileSync(s, 'utf8')).toBe('OLD');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});
