/**
 * The container tools end to end: each tool a real child process (`node eve_tools_tpm2_*.cjs`)
 * → the service (child process, real tenants) → swtpm. The proposal's exact commands and output,
 * openssl verification for RSA and ECC with every hash, a 200 MiB streamed message, and every
 * failure path with its exit code and its one line on stderr.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.js';
import { isCI } from '../helpers/ci.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { cleanEnv, missingPrerequisites, runNode, startStack, TOOLS, type Stack } from './stack.js';

const missing = missingPrerequisites();
if (missing.length && isCI()) throw new Error(`end-to-end tests need ${missing.join(', ')} (apt-get install swtpm swtpm-tools openssl)`);
const d = missing.length ? describe.skip : describe;

let stack: Stack;
let work: string;

beforeAll(async () => {
  if (missing.length) return;
  stack = await startStack([{ id: 'app' }, { id: 'other' }, { id: 'small', maxKeys: 1 }]);
  work = join(stack.dir, 'work');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const openssl = (args: string[], cwd = work) => spawnSync('openssl', args, { cwd, encoding: 'utf8' });

/** Exactly one line on stderr, starting with the tool's name. */
function oneLine(stderr: string, tool: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`${tool}: `), stderr).toBe(true);
  return lines[0]!.slice(tool.length + 2);
}

/** How far process `pid` has read `file` (Linux /proc), or undefined while it has no fd on it. */
function readPosition(pid: number, file: string): number | undefined {
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      if (target !== realpathSync(file)) continue;
      const pos = /^pos:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (pos) return Number(pos[1]);
    }
  } catch {
    // the process is gone
  }
  return undefined;
}

const tmpFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

d('the original proposal, exactly as written', () => {
  it('genaik -g 0x1 prints the proposal line with handle 0x81010000', async () => {
    const r = await stack.run('eve_tools_tpm2_genaik', ['-g', '0x1']);
    expect(r).toMatchObject({ code: 0, stdout: 'AIK Pair generated at persistent handle 0x81010000\n', stderr: '' });
  });

  it('pubgetaik -k 0x81010000 -f ak.pem writes a PEM SubjectPublicKeyInfo, silently', async () => {
    const r = await stack.run('eve_tools_tpm2_pubgetaik', ['-k', '0x81010000', '-f', 'ak.pem']);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const pem = readFileSync(join(work, 'ak.pem'), 'utf8');
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
    const o = openssl(['pkey', '-pubin', '-in', 'ak.pem', '-noout', '-text']);
    expect(o.stdout).toMatch(/Public-Key: \(2048 bit\)/);
  });

  it('sign -k 0x81010000 -m message.txt -g 0x00B -s sign.bin, and openssl says Verified OK', async () => {
    const r = await stack.run('eve_tools_tpm2_sign', ['-k', '0x81010000', '-m', 'message.txt', '-g', '0x00B', '-s', 'sign.bin']);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(statSync(join(work, 'sign.bin')).size).toBe(256);
    const v = openssl(['dgst', '-sha256', '-verify', 'ak.pem', '-signature', 'sign.bin', 'message.txt']);
    expect(v.stdout).toBe('Verified OK\n');
    expect(tmpFiles(work)).toEqual([]);
  });
});

d('every key type and hash: plain signatures verify with openssl', () => {
  for (const [g, type] of [
    ['0x1', 'rsa'],
    ['0x23', 'ecc'],
  ] as const) {
    for (const [G, hash] of [
      ['0x4', 'sha1'],
      ['0xB', 'sha256'],
      ['0xC', 'sha384'],
      ['0xD', 'sha512'],
    ] as const) {
      it(`${type} / ${hash}`, async () => {
        const gen = await stack.run('eve_tools_tpm2_genaik', ['-g', g, '-G', G, '--json']);
        expect(gen.code, gen.stderr).toBe(0);
        const key = JSON.parse(gen.stdout) as { handle: string; type: string; hashAlg: string };
        expect(key).toMatchObject({ type, hashAlg: hash });
        const pem = `${type}-${hash}.pem`;
        const sig = `${type}-${hash}.sig`;
        expect((await stack.run('eve_tools_tpm2_pubgetaik', ['-k', key.handle, '-f', pem])).code).toBe(0);
        const s = await stack.run('eve_tools_tpm2_sign', ['-k', key.handle, '-m', 'message.txt', '-g', G, '-s', sig]);
        expect(s, s.stderr).toMatchObject({ code: 0, stderr: '' });
        const v = openssl(['dgst', `-${hash}`, '-verify', pem, '-signature', sig, 'message.txt']);
        expect(v.stdout, v.stderr).toBe('Verified OK\n');
        // A tampered message must not verify (the check is real).
        writeFileSync(join(work, 'tampered.txt'), 'Hello from an EVE edge container!\n');
        expect(openssl(['dgst', `-${hash}`, '-verify', pem, '-signature', sig, 'tampered.txt']).stdout).not.toMatch(/Verified OK/);
        // Keep the tenant under its quota of 8.
        const e = await stack.run('eve_tools_tpm2_evictaik', ['-k', key.handle]);
        expect(e).toMatchObject({ code: 0, stdout: `AIK Pair evicted from persistent handle ${key.handle}\n` });
      });
    }
  }
});

d('formats and --json', () => {
  let ecc: string;
  beforeAll(async () => {
    const r = await stack.run('eve_tools_tpm2_genaik', ['-g', 'ecc']);
    ecc = /handle (0x[0-9a-f]{8})$/m.exec(r.stdout)![1]!;
  });

  it('pubgetaik --format der is the same key as the PEM; tss is a TPM2B_PUBLIC', async () => {
    expect((await stack.run('eve_tools_tpm2_pubgetaik', ['-k', ecc, '-f', 'ecc.pem'])).code).toBe(0);
    expect((await stack.run('eve_tools_tpm2_pubgetaik', ['-k', ecc, '-f', 'ecc.der', '--format', 'der'])).code).toBe(0);
    expect((await stack.run('eve_tools_tpm2_pubgetaik', ['-k', ecc, '-f', 'ecc.tss', '--format', 'tss'])).code).toBe(0);
    const fromDer = openssl(['pkey', '-pubin', '-inform', 'DER', '-in', 'ecc.der', '-outform', 'PEM']).stdout;
    expect(fromDer).toBe(readFileSync(join(work, 'ecc.pem'), 'utf8'));
    const tss = readFileSync(join(work, 'ecc.tss'));
    expect(tss.readUInt16BE(0)).toBe(tss.length - 2); // TPM2B size
    expect(tss.readUInt16BE(2)).toBe(0x0023); // TPMT_PUBLIC.type = TPM_ALG_ECC
  });

  it('pubgetaik without -f prints the PEM; --json carries it', async () => {
    const a = await stack.run('eve_tools_tpm2_pubgetaik', ['-k', ecc]);
    expect(a.stdout).toBe(readFileSync(join(work, 'ecc.pem'), 'utf8'));
    const b = await stack.run('eve_tools_tpm2_pubgetaik', ['-k', ecc, '--json']);
    expect(JSON.parse(b.stdout)).toEqual({ handle: ecc, format: 'pem', pem: a.stdout });
    const c = await stack.run('eve_tools_tpm2_pubgetaik', ['-k', ecc, '-f', 'x.pem', '--json']);
    expect(JSON.parse(c.stdout)).toEqual({ handle: ecc, format: 'pem', file: 'x.pem' });
  });

  it('sign --format der equals plain; tss is a TPMT_SIGNATURE; --json describes it', async () => {
    const plain = await stack.run('eve_tools_tpm2_sign', ['-k', ecc, '-m', 'message.txt', '-s', 'e.plain', '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    const j = JSON.parse(plain.stdout);
    expect(j).toMatchObject({ handle: ecc, sigAlg: 'ecdsa', hashAlg: 'sha256', format: 'plain', file: 'e.plain', messageLength: 34 });
    expect(j.digest).toBe(openssl(['dgst', '-sha256', '-r', 'message.txt']).stdout.split(' ')[0]);
    expect(j.signatureLength).toBe(statSync(join(work, 'e.plain')).size);
    expect(openssl(['dgst', '-sha256', '-verify', 'ecc.pem', '-signature', 'e.plain', 'message.txt']).stdout).toBe('Verified OK\n');
    expect((await stack.run('eve_tools_tpm2_sign', ['-k', ecc, '-m', 'message.txt', '-s', 'e.der', '--format', 'der'])).code).toBe(0);
    expect(openssl(['dgst', '-sha256', '-verify', 'ecc.pem', '-signature', 'e.der', 'message.txt']).stdout).toBe('Verified OK\n');
    expect((await stack.run('eve_tools_tpm2_sign', ['-k', ecc, '-m', 'message.txt', '-s', 'e.tss', '--format', 'tss'])).code).toBe(0);
    const tss = readFileSync(join(work, 'e.tss'));
    expect(tss.readUInt16BE(0)).toBe(0x0018); // TPM_ALG_ECDSA
    expect(tss.readUInt16BE(2)).toBe(0x000b); // TPM_ALG_SHA256
  });

  it('sign -m - reads stdin; -s - writes the signature to stdout; --json with -s - holds it in base64', async () => {
    const a = await stack.run('eve_tools_tpm2_sign', ['-k', ecc, '-m', '-', '-s', 'stdin.sig'], 'app', { input: 'Hello from an EVE edge container.\n' });
    expect(a).toMatchObject({ code: 0, stderr: '' });
    expect(openssl(['dgst', '-sha256', '-verify', 'ecc.pem', '-signature', 'stdin.sig', 'message.txt']).stdout).toBe('Verified OK\n');
    const b = await stack.run('eve_tools_tpm2_sign', ['-k', ecc, '-m', 'message.txt', '-s', '-', '--json']);
    const sig = Buffer.from(JSON.parse(b.stdout).signature, 'base64');
    writeFileSync(join(work, 'b64.sig'), sig);
    expect(openssl(['dgst', '-sha256', '-verify', 'ecc.pem', '-signature', 'b64.sig', 'message.txt']).stdout).toBe('Verified OK\n');
  });

  it('listkeys: a table of only the caller\'s keys; --json', async () => {
    const o = await stack.run('eve_tools_tpm2_genaik', ['-g', 'rsa'], 'other');
    expect(o.code).toBe(0);
    const l = await stack.run('eve_tools_tpm2_listkeys', []);
    const lines = l.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^HANDLE\s+TYPE\s+HASH\s+CREATED$/);
    expect(lines.slice(1).map((x) => x.split(/\s+/)[0])).toEqual(['0x81010000', ecc]);
    const j = JSON.parse((await stack.run('eve_tools_tpm2_listkeys', ['--json'])).stdout);
    expect(j.keys.map((k: { handle: string }) => k.handle)).toEqual(['0x81010000', ecc]);
    const other = await stack.run('eve_tools_tpm2_listkeys', ['--json'], 'other');
    expect(JSON.parse(other.stdout).keys).toHaveLength(1);
  });

  it('evictaik --json, then the handle is gone for good', async () => {
    const g = await stack.run('eve_tools_tpm2_genaik', ['-g', 'rsa', '--json']);
    const h = JSON.parse(g.stdout).handle as string;
    const e = await stack.run('eve_tools_tpm2_evictaik', ['-k', h, '--json']);
    expect(JSON.parse(e.stdout)).toEqual({ handle: h, evicted: true });
    const s = await stack.run('eve_tools_tpm2_sign', ['-k', h, '-m', 'message.txt', '-s', 'gone.sig']);
    expect(s.code).toBe(EXIT.AUTH);
    expect(oneLine(s.stderr, 'eve_tools_tpm2_sign')).toBe(`key ${h} is not yours: only keys this application created can be used`);
  });

  it('--help and --version for every tool', async () => {
    for (const t of TOOLS) {
      const h = await runNode(stack.tool(t), ['--help'], { env: cleanEnv() });
      expect(h.code).toBe(0);
      expect(h.stdout).toMatch(new RegExp(`^Usage: ${t} (\\[[A-Z]+\\] )?\\[options\\]`)); // pcrread: [SELECTION]
      expect(h.stdout).toMatch(/--service <address>/);
      expect(h.stderr).toBe('');
      const v = await runNode(stack.tool(t), ['--version'], { env: cleanEnv() });
      expect(v).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^${t} \\d+\\.\\d+\\.\\d+\\n$`)) });
    }
  });
});

d('a 200 MiB message', () => {
  const SIZE = 200 * 1024 * 1024;
  let big: string;
  let pem: string;
  beforeAll(async () => {
    big = join(stack.dir, 'big.bin');
    // Written in 1 MiB pieces (never held in memory), distinct so no chunk repeats.
    const out = createWriteStream(big);
    const seed = randomBytes(1024 * 1024);
    for (let i = 0; i < SIZE / seed.length; i++) {
      seed.writeUInt32BE(i, 0);
      if (!out.write(Buffer.from(seed))) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    pem = join(work, 'ak.pem');
  });

  it('is streamed from a file, with a progress line on a terminal, in bounded memory, and verifies', async () => {
    const sig = join(work, 'big.sig');
    const rss = join(stack.dir, 'rss.txt');
    const hook = join(stack.dir, 'rss-hook.cjs');
    // Records the tool's peak memory when it exits (it calls process.exit).
    writeFileSync(hook, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(rss)}, String(process.resourceUsage().maxRSS)));\n`);
    // `script` gives the tool a terminal, as a person at a shell would have.
    const env = stack.env('app');
    const cmd = [process.execPath, '-r', hook, stack.tool('eve_tools_tpm2_sign'), '-k', '0x81010000', '-m', big, '-g', 'sha256', '-s', sig].join(' ');
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stdout).toBe(0);
    // Progress redrawn in place with \r, with size, rate and time left, then wiped.
    expect(r.stdout).toMatch(/\rsending message: [\d.]+ MiB \/ 200\.0 MiB \(\d+%\), [\d.]+ MiB\/s, \d+:\d\d left/);
    expect(r.stdout.trimEnd().endsWith('\r') || /\r *\r?$/.test(r.stdout)).toBe(true);
    const maxRssKiB = Number(readFileSync(rss, 'utf8'));
    expect(maxRssKiB).toBeLessThan(150 * 1024);
    const v = openssl(['dgst', '-sha256', '-verify', pem, '-signature', sig, big]);
    expect(v.stdout).toBe('Verified OK\n');
  }, 120_000);

  it('Ctrl-C mid-stream: exit 130, one line, the old output untouched, no temp file', async () => {
    const sig = join(work, 'keep.sig');
    writeFileSync(sig, 'OLD');
    let child: import('node:child_process').ChildProcess | undefined;
    const p = stack.run('eve_tools_tpm2_sign', ['-k', '0x81010000', '-m', big, '-s', sig], 'app', { onSpawn: (c) => (child = c) });
    // Mid-stream is an event, not a delay: the tool has read part of the message and runs on.
    for (;;) {
      expect(child?.exitCode ?? null).toBe(null);
      if (child?.pid && (readPosition(child.pid, big) ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // While the message is streaming the output is neither created nor touched.
    expect(readFileSync(sig, 'utf8')).toBe('OLD');
    expect(tmpFiles(work)).toEqual([]);
    child!.kill('SIGINT');
    const r = await p;
    expect(r.code).toBe(EXIT.SIGINT);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_sign')).toBe('interrupted (SIGINT); no output was written');
    expect(readFileSync(sig, 'utf8')).toBe('OLD');
    expect(tmpFiles(work)).toEqual([]);
  });

  it('piped on stdin (size unknown): no progress when stderr is not a terminal', async () => {
    const part = join(stack.dir, 'part.bin');
    writeFileSync(part, readFileSync(big).subarray(0, 8 * 1024 * 1024));
    const r = await stack.run('eve_tools_tpm2_sign', ['-k', '0x81010000', '-m', '-', '-s', 'part.sig'], 'app', { input: createReadStream(part) });
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(openssl(['dgst', '-sha256', '-verify', pem, '-signature', 'part.sig', part]).stdout).toBe('Verified OK\n');
  });
});

d('deploy/install.sh', () => {
  const script = join(REPO_ROOT, 'deploy/install.sh');
  const sh = (args: string[], env: NodeJS.ProcessEnv = cleanEnv(), cwd = stack.dir) => spawnSync('sh', [script, ...args], { env, cwd, encoding: 'utf8' });

  it('bundles, installs with a config file, and the installed tools work through their PATH names', async () => {
    // A built tree as the script finds it: bin/*.cjs, and the vsock addon in node_modules.
    const from = join(stack.dir, 'from');
    mkdirSync(join(from, 'bin'), { recursive: true });
    for (const t of TOOLS) copyFileSync(stack.tool(t), join(from, 'bin', `${t}.cjs`));
    const addon = join(REPO_ROOT, 'node_modules/node-vsock-linux-x64-gnu');
    if (existsSync(addon)) cpSync(addon, join(from, 'node_modules/node-vsock-linux-x64-gnu'), { recursive: true });
    const b = sh(['--from', from, '--bundle', 'eve-tools.tar.gz']);
    expect(b.status, b.stderr).toBe(0);
    const unpacked = join(stack.dir, 'unpacked');
    mkdirSync(unpacked);
    expect(spawnSync('tar', ['-xzf', join(stack.dir, 'eve-tools.tar.gz'), '-C', unpacked]).status).toBe(0);

    const prefix = join(stack.dir, 'prefix');
    const config = join(stack.dir, 'etc/eve-tools/config.json');
    const env = cleanEnv({ EVE_TOOLS_SECRET: stack.secrets.app, EVE_TOOLS_CONFIG: config });
    const i = spawnSync('sh', [join(unpacked, 'eve-tools/install.sh'), '--prefix', prefix, '--service', stack.address, '--secret-env'], { env, encoding: 'utf8' });
    expect(i.status, i.stderr).toBe(0);
    expect(i.stdout).toContain(`installed ${TOOLS.length} tools in `);
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(config, 'utf8'))).toEqual({ service: stack.address, secret: stack.secrets.app });

    // As an application would run them: by name on PATH, settings from the config file only.
    const appEnv = cleanEnv({ EVE_TOOLS_CONFIG: config, PATH: `${join(prefix, 'bin')}:${process.env.PATH}` });
    const r = spawnSync('eve_tools_tpm2_listkeys', [], { env: appEnv, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^(HANDLE|no keys)/);
    expect(r.stderr).toBe('');
    const v = spawnSync('eve_tools_tpm2_sign', ['--version'], { env: appEnv, encoding: 'utf8' });
    expect(v.stdout).toMatch(/^eve_tools_tpm2_sign \d/);
    const usage = spawnSync('eve_tools_usage', ['--json'], { env: appEnv, encoding: 'utf8' });
    expect(usage.status, usage.stderr).toBe(0);
    expect(JSON.parse(usage.stdout)).toMatchObject({ tenant: 'app', cgroup: { available: false, configured: false } });

    // A reinstall with only --service keeps the provisioned secret.
    const again = spawnSync('sh', [join(unpacked, 'eve-tools/install.sh'), '--prefix', prefix, '--service', 'vsock:2:8877'], { env: cleanEnv({ EVE_TOOLS_CONFIG: config }), encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(readFileSync(config, 'utf8'))).toEqual({ service: 'vsock:2:8877', secret: stack.secrets.app });

    const u = sh(['--uninstall', '--prefix', prefix]);
    expect(u.status, u.stderr).toBe(0);
    expect(existsSync(join(prefix, 'bin/eve_tools_tpm2_sign'))).toBe(false);
    expect(existsSync(config)).toBe(true);
  });

  it('refuses unknown options and a tree without the tools, with one line', () => {
    const a = sh(['--frobnicate']);
    expect(a.status).toBe(1);
    expect(a.stderr).toBe("install.sh: unknown option '--frobnicate' (see --help)\n");
    const b = sh(['--from', join(stack.dir, 'nowhere'), '--prefix', join(stack.dir, 'p2')]);
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/^install\.sh: missing .*nowhere\/bin\/eve_tools_tpm2_genaik\.cjs\n$/);
  });
});

d('failures: one line on stderr, a documented exit code, no output', () => {
  const sign = (args: string[], tenant = 'app', opts = {}) => stack.run('eve_tools_tpm2_sign', args, tenant, opts);

  it('usage errors: exit 2', async () => {
    const cases: Array<[string, string[], string]> = [
      ['eve_tools_tpm2_genaik', ['-g', '0x1', '--bogus'], "unknown option '--bogus' (see --help)"],
      ['eve_tools_tpm2_genaik', ['-g', '0x25'], '-g: TPM_ALG_ID 0x0025 is not a supported key algorithm; use one of 0x0001 (rsa), 0x0023 (ecc)'],
      ['eve_tools_tpm2_sign', ['-k', '0x81010000', '-m', 'message.txt', '-g', 'md5', '-s', 'x'], "-g: unknown hash algorithm 'md5'; use one of 0x0004 (sha1), 0x000b (sha256), 0x000c (sha384), 0x000d (sha512)"],
      ['eve_tools_tpm2_sign', ['-k', 'abc', '-m', 'message.txt', '-s', 'x'], "-k: 'abc' is not a handle; give a number such as 0x81010000"],
      ['eve_tools_tpm2_sign', ['-k', '0x81010000', '-s', 'x'], "required option '-m, --message <file>' not specified (see --help)"],
      ['eve_tools_tpm2_pubgetaik', ['-k', '0x81010000', 'extra'], "too many arguments. Expected 0 arguments but got 1. (see --help)"],
      ['eve_tools_tpm2_pubgetaik', ['-k', '0x81010000', '--format', 'jwk'], "--format: unknown public key format 'jwk'; use pem, der or tss"],
      ['eve_tools_tpm2_listkeys', ['--service', 'http://host'], 'unknown address http://host: use unix:PATH, tcp:HOST:PORT or vsock:CID:PORT'.replace(/^/, '--service: ')],
    ];
    for (const [tool, args, line] of cases) {
      const r = await stack.run(tool as never, args);
      expect(r.code, `${tool} ${args.join(' ')}: ${r.stderr}`).toBe(EXIT.USAGE);
      expect(oneLine(r.stderr, tool)).toBe(line);
    }
  });

  it('missing or unreadable message, unwritable output: exit 6, before the service is asked', async () => {
    const a = await sign(['-k', '0x81010000', '-m', 'nope.txt', '-s', 'x.sig']);
    expect(a.code).toBe(EXIT.FILE);
    expect(oneLine(a.stderr, 'eve_tools_tpm2_sign')).toBe("cannot read message file 'nope.txt': no such file or directory");
    mkdirSync(join(work, 'adir'), { recursive: true });
    const b = await sign(['-k', '0x81010000', '-m', 'adir', '-s', 'x.sig']);
    expect(b.code).toBe(EXIT.FILE);
    expect(oneLine(b.stderr, 'eve_tools_tpm2_sign')).toBe("cannot read message file 'adir': is a directory");
    const c = await sign(['-k', '0x81010000', '-m', 'message.txt', '-s', 'no/such/dir/x.sig']);
    expect(c.code).toBe(EXIT.FILE);
    expect(oneLine(c.stderr, 'eve_tools_tpm2_sign')).toBe("cannot write signature file 'no/such/dir/x.sig': no such file or directory");
    const d2 = await stack.run('eve_tools_tpm2_pubgetaik', ['-k', '0x81010000', '-f', 'adir']);
    expect(d2.code).toBe(EXIT.FILE);
    expect(oneLine(d2.stderr, 'eve_tools_tpm2_pubgetaik')).toBe("cannot write public key file 'adir': is a directory");
    expect(existsSync(join(work, 'x.sig'))).toBe(false);
    // The service never saw these: local checks come first.
    expect(stack.serviceLog()).not.toMatch(/nope\.txt/);
  });

  it("another application's key, EVE's keys: exit 3, and the other key still works for its owner", async () => {
    const theirs = JSON.parse((await stack.run('eve_tools_tpm2_listkeys', ['--json'], 'other')).stdout).keys[0].handle as string;
    for (const h of [theirs, '0x81000001', '0x81000002', '0x817fffff', '0x81010001']) {
      const r = await sign(['-k', h, '-m', 'message.txt', '-s', 'stolen.sig']);
      expect(r.code, r.stderr).toBe(EXIT.AUTH);
      expect(oneLine(r.stderr, 'eve_tools_tpm2_sign')).toBe(`key ${h} is not yours: only keys this application created can be used`);
    }
    const p = await stack.run('eve_tools_tpm2_pubgetaik', ['-k', theirs, '-f', 'stolen.pem']);
    expect(p.code).toBe(EXIT.AUTH);
    const e = await stack.run('eve_tools_tpm2_evictaik', ['-k', theirs]);
    expect(e.code).toBe(EXIT.AUTH);
    expect(existsSync(join(work, 'stolen.sig')) || existsSync(join(work, 'stolen.pem'))).toBe(false);
    const own = await sign(['-k', theirs, '-m', 'message.txt', '-s', 'theirs.sig'], 'other');
    expect(own.code, own.stderr).toBe(0);
  });

  it('wrong or missing secret: exit 3 and where the secret came from', async () => {
    const a = await sign(['-k', '0x81010000', '-m', 'message.txt', '-s', 'x.sig'], 'app', { env: stack.env('app', { EVE_TOOLS_SECRET: 'wrong' }) });
    expect(a.code).toBe(EXIT.AUTH);
    expect(oneLine(a.stderr, 'eve_tools_tpm2_sign')).toMatch(/^the TPM service did not accept this application's identity: .*; the secret came from EVE_TOOLS_SECRET$/);
    const env = stack.env('app');
    delete env.EVE_TOOLS_SECRET;
    const b = await stack.run('eve_tools_tpm2_listkeys', [], 'app', { env });
    expect(b.code).toBe(EXIT.AUTH);
    expect(oneLine(b.stderr, 'eve_tools_tpm2_listkeys')).toMatch(/no secret is configured \(use --secret-file, EVE_TOOLS_SECRET or the config file\)$/);
  });

  it('hash not matching the key: exit 5 with the way out; nothing written', async () => {
    writeFileSync(join(work, 'keep384.sig'), 'OLD');
    const r = await sign(['-k', '0x81010000', '-m', 'message.txt', '-g', '0x00C', '-s', 'keep384.sig']);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_sign')).toBe(
      "key 0x81010000 signs with sha256 only (an AK's hash is fixed when it is created), not sha384; create a sha384 key with: eve_tools_tpm2_genaik -g rsa -G 0xC",
    );
    expect(readFileSync(join(work, 'keep384.sig'), 'utf8')).toBe('OLD');
  });

  it('a message the AK must never sign (TPM_GENERATED_VALUE prefix): exit 5', async () => {
    writeFileSync(join(work, 'forged.bin'), Buffer.concat([Buffer.from([0xff, 0x54, 0x43, 0x47]), Buffer.from('attest')]));
    const r = await sign(['-k', '0x81010000', '-m', 'forged.bin', '-s', 'forged.sig']);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_sign')).toMatch(/^not supported: the message starts with TPM_GENERATED_VALUE/);
    expect(existsSync(join(work, 'forged.sig'))).toBe(false);
  });

  it('quota reached: exit 10', async () => {
    expect((await stack.run('eve_tools_tpm2_genaik', ['-g', 'ecc'], 'small')).code).toBe(0);
    const r = await stack.run('eve_tools_tpm2_genaik', ['-g', 'ecc'], 'small');
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_genaik')).toMatch(/^key quota reached: .*; delete a key with eve_tools_tpm2_evictaik first$/);
  });

  it('service unreachable: exit 4 naming the address and where it came from', async () => {
    const a = await stack.run('eve_tools_tpm2_listkeys', ['--service', `unix:${stack.dir}/nope.sock`]);
    expect(a.code).toBe(EXIT.UNREACHABLE);
    expect(oneLine(a.stderr, 'eve_tools_tpm2_listkeys')).toBe(`cannot reach the TPM service at unix:${stack.dir}/nope.sock (from --service): no such socket`);
    const b = await stack.run('eve_tools_tpm2_listkeys', [], 'app', { env: stack.env('app', { EVE_TOOLS_SERVICE: 'tcp:127.0.0.1:1' }) });
    expect(b.code).toBe(EXIT.UNREACHABLE);
    expect(oneLine(b.stderr, 'eve_tools_tpm2_listkeys')).toMatch(/^cannot reach the TPM service at tcp:127\.0\.0\.1:1 \(from EVE_TOOLS_SERVICE\): connection refused/);
  });

  it('the default address is vsock CID 2 port 8877', async () => {
    const env = cleanEnv({ EVE_TOOLS_CONFIG: 'none' });
    const r = await stack.run('eve_tools_tpm2_listkeys', ['--timeout', '5'], 'app', { env, timeoutMs: 30_000 });
    // No service on this machine's vsock (or no vsock at all): unreachable or timed out, never a hang.
    expect([EXIT.UNREACHABLE, EXIT.TIMEOUT]).toContain(r.code);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_listkeys')).toMatch(/the TPM service at vsock:2:8877: /);
  });

  it('no vsock addon (as on arm64 or musl): exit 4 saying so', async () => {
    // The tool alone, with no node_modules anywhere above it.
    const lone = join(stack.dir, 'lone');
    mkdirSync(lone, { recursive: true });
    copyFileSync(stack.tool('eve_tools_tpm2_listkeys'), join(lone, 'eve_tools_tpm2_listkeys.cjs'));
    const env = cleanEnv({ EVE_TOOLS_CONFIG: 'none' });
    const r = await runNode(join(lone, 'eve_tools_tpm2_listkeys.cjs'), ['--timeout', '5'], { env, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(EXIT.UNREACHABLE);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_listkeys')).toMatch(/^cannot reach the TPM service at vsock:2:8877: vsock is not available: /);
    const bogus = await runNode(join(lone, 'eve_tools_tpm2_listkeys.cjs'), [], { env: { ...env, EVE_TOOLS_VSOCK_ADDON: join(lone, 'nope.node') }, timeoutMs: 30_000 });
    expect(bogus.code).toBe(EXIT.UNREACHABLE);
    expect(oneLine(bogus.stderr, 'eve_tools_tpm2_listkeys')).toMatch(/vsock is not available: cannot load the vsock addon from EVE_TOOLS_VSOCK_ADDON=/);
  });

  it('a service that never answers: --timeout gives exit 8', async () => {
    const sock = join(stack.dir, 'silent.sock');
    const held: import('node:net').Socket[] = [];
    const server: Server = createServer((s) => held.push(s));
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const r = await stack.run('eve_tools_tpm2_genaik', ['--service', `unix:${sock}`, '--timeout', '0.5']);
      expect(r.code).toBe(EXIT.TIMEOUT);
      // The exit code and the line say the 0.5 s deadline ended it (no wall-clock check).
      expect(oneLine(r.stderr, 'eve_tools_tpm2_genaik')).toBe(`timed out waiting for the TPM service at unix:${sock} (from --service): no answer within 500 ms`);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('settings: --secret-file beats EVE_TOOLS_SECRET; the config file is used and a readable one warned about', async () => {
    const secretFile = join(stack.dir, 'app.secret');
    writeFileSync(secretFile, `${stack.secrets.app}\n`, { mode: 0o600 });
    const a = await stack.run('eve_tools_tpm2_listkeys', ['--secret-file', secretFile], 'app', { env: stack.env('app', { EVE_TOOLS_SECRET: 'wrong' }) });
    expect(a).toMatchObject({ code: 0, stderr: '' });
    const config = join(stack.dir, 'config.json');
    writeFileSync(config, JSON.stringify({ service: stack.address, secret: stack.secrets.app }));
    chmodSync(config, 0o600);
    const env = cleanEnv({ EVE_TOOLS_CONFIG: config });
    const b = await stack.run('eve_tools_tpm2_listkeys', [], 'app', { env });
    expect(b).toMatchObject({ code: 0, stderr: '' });
    chmodSync(config, 0o644);
    const c = await stack.run('eve_tools_tpm2_listkeys', [], 'app', { env });
    expect(c.code).toBe(0);
    expect(oneLine(c.stderr, 'eve_tools_tpm2_listkeys')).toBe(`warning: config file ${config} is readable by group or others (mode 0644); run: chmod 600 ${config}`);
    const m = await runNode(stack.tool('eve_tools_tpm2_listkeys'), ['--secret-file', join(stack.dir, 'none')], { env });
    expect(m.code).toBe(EXIT.FILE);
  });

  it('--json failures: the stderr line plus an error object on stdout', async () => {
    const r = await sign(['-k', '0x81000001', '-m', 'message.txt', '-s', 'x.sig', '--json']);
    expect(r.code).toBe(EXIT.AUTH);
    oneLine(r.stderr, 'eve_tools_tpm2_sign');
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'FORBIDDEN', exitCode: 3, kind: 'auth', status: 403 } });
  });

  // Last: these break the TPM under the service.
  it('a TPM error: exit 7 with tpm2-tss text and the response code', async () => {
    // TPM_Init on swtpm's control channel without the Startup that should follow it.
    const io = spawnSync('swtpm_ioctl', ['--unix', stack.swtpm.ctrlPath, '-i'], { encoding: 'utf8' });
    expect(io.status, io.stderr).toBe(0);
    writeFileSync(join(work, 'tpm.sig'), 'OLD');
    const r = await sign(['-k', '0x81010000', '-m', 'message.txt', '-s', 'tpm.sig', '--json']);
    expect(r.code).toBe(EXIT.TPM);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_sign')).toBe(
      'TPM error: tpm:error(2.0): TPM not initialized by TPM2_Startup or already initialized (rc 0x00000100)',
    );
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'TPM_ERROR', exitCode: 7, tpmRc: '0x00000100' } });
    expect(readFileSync(join(work, 'tpm.sig'), 'utf8')).toBe('OLD');
  });

  it('the service cannot reach its TPM (503 TPM_UNAVAILABLE): exit 7', async () => {
    stack.swtpm.kill();
    const r = await stack.run('eve_tools_tpm2_genaik', ['-g', 'rsa'], 'app', { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(EXIT.TPM);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_genaik')).toMatch(/^the TPM service cannot reach its TPM: /);
  }, 90_000);
});
