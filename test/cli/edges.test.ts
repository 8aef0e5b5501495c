/**
 * The tools' edges: a misspelt config key, `-f pem` (a format name given as the output file), and
 * failures that errno codes alone leave cryptic — a peer that is not the service (raw TCP
 * garbage, a closed connection, a plain web server) and permission denied (the unix socket, the
 * output directory, the secret file) — each one plain line with README's EXIT STATUS code.
 * Real sockets and the real client; permission tests run the built tool as an unprivileged user.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createServiceClient } from '../../src/cli/client.js';
import { EXIT } from '../../src/cli/errors.js';
import { runTool, type CliIO } from '../../src/cli/run.js';
import { genaik } from '../../src/cli/tools/genaik.js';
import { listkeys } from '../../src/cli/tools/listkeys.js';
import { pubgetaik } from '../../src/cli/tools/pubgetaik.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { newState, run } from './fake.js';

const dir = mkdtempSync(join(tmpdir(), 'cli-edges-'));
chmodSync(dir, 0o755); // the unprivileged user below must reach the tool inside
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('warnings', () => {
  it('warns once about unknown config file keys, and still uses the known ones', async () => {
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ servce: 'unix:/x', secret: 's', timeout: 3 }), { mode: 0o600 });
    const r = await run(listkeys, [], { env: { EVE_TOOLS_CONFIG: cfg } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`eve_tools_tpm2_listkeys: warning: config file ${cfg}: unknown keys "servce", "timeout" ignored; the keys are "service" and "secret"\n`);
    expect(r.state.options[0]).toMatchObject({ address: 'vsock:2:8877', secret: 's' });
  });

  it("warns when pubgetaik's output file is named like a format (tpm2-tools' -f), and writes it", async () => {
    const state = newState();
    const made = await run(genaik, ['-g', 'ecc'], { state });
    expect(made.code).toBe(0);
    const f = join(dir, 'pem');
    const r = await run(pubgetaik, ['-k', '0x81010000', '-f', f], { state });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`eve_tools_tpm2_pubgetaik: warning: writing to a file named '${f}'; did you mean --format pem?\n`);
    expect(readFileSync(f, 'utf8')).toContain('BEGIN PUBLIC KEY');
    const quiet = await run(pubgetaik, ['-k', '0x81010000', '-f', join(dir, 'ak.pem')], { state });
    expect(quiet.stderr).toBe('');
  });
});

/** Runs listkeys in-process with the real client against ADDRESS. */
async function listAt(address: string): Promise<{ code: number; stderr: string }> {
  const err: Buffer[] = [];
  const stderr = new PassThrough();
  stderr.on('data', (c: Buffer) => err.push(c));
  const io: CliIO = {
    env: { EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SECRET: 'x' },
    stdout: new PassThrough(),
    stderr,
    stdin: Readable.from([]),
    createClient: createServiceClient,
  };
  const code = await runTool(listkeys, ['--service', address, '--timeout', '20'], io);
  return { code, stderr: Buffer.concat(err).toString('utf8') };
}

async function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<string> {
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const a = server.address();
  return `tcp:127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

describe('a peer that is not the service', () => {
  const servers: Array<{ close(): unknown }> = [];
  afterAll(() => servers.forEach((s) => s.close()));

  it('says so when the address answers something that is not HTTP (exit 4)', async () => {
    const s = createServer((c) => c.end('SSH-2.0-OpenSSH_9.2\r\n'));
    servers.push(s);
    const at = await listen(s);
    const r = await listAt(at);
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.stderr).toBe(`eve_tools_tpm2_listkeys: the peer at ${at} (from --service) answered, but not in HTTP: it is not eve-tpm-service (wrong address or port?)\n`);
  });

  it('says so when the peer closes the connection without a word (exit 4)', async () => {
    const s = createServer((c) => c.resetAndDestroy());
    servers.push(s);
    const at = await listen(s);
    const r = await listAt(at);
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.stderr).toBe(`eve_tools_tpm2_listkeys: the peer at ${at} (from --service) closed the connection without answering: it is not eve-tpm-service, or the service is restarting\n`);
  });

  it('says so when a web server that is not the service answers (exit 4)', async () => {
    const s = createHttpServer((_q, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    servers.push(s);
    const at = await listen(s);
    const r = await listAt(at);
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.stderr).toBe(`eve_tools_tpm2_listkeys: the peer at ${at} (from --service) answered HTTP 404, but not as the TPM service does: is this the eve-tpm-service address?\n`);
  });
});

// Root ignores file modes: as root, run the tool as `nobody` (setpriv); otherwise as ourselves.
const asRoot = process.getuid?.() === 0;
const setpriv = spawnSync('setpriv', ['--version']).status === 0;

describe.skipIf(skipUnlessCI(asRoot && !setpriv, 'setpriv (util-linux)'))('permission denied', () => {
  const tool = (name: string): string => {
    const out = join(dir, `${name}.cjs`);
    const b = spawnSync(
      join(REPO_ROOT, 'node_modules/.bin/esbuild'),
      [`src/bin/${name}.ts`, '--bundle', '--platform=node', '--format=cjs', `--outfile=${out}`, '--external:node-vsock-linux-x64-gnu', '--log-level=error'],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    if (b.status !== 0) throw new Error(`esbuild failed: ${b.stderr}`);
    chmodSync(out, 0o644);
    return out;
  };
  const unprivileged = (file: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } => {
    const cmd = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), file, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH, EVE_TOOLS_CONFIG: 'none', ...env },
    });
    return { status: r.status, stderr: r.stderr };
  };

  it('names a unix socket this user may not open (exit 4)', async () => {
    const sock = join(dir, 'private.sock');
    const s = createServer();
    await new Promise<void>((res) => s.listen(sock, res));
    chmodSync(sock, 0o600);
    try {
      const r = unprivileged(tool('eve_tools_tpm2_listkeys'), ['--service', `unix:${sock}`], { EVE_TOOLS_SECRET: 'x' });
      expect(r.status, r.stderr).toBe(EXIT.UNREACHABLE);
      expect(r.stderr).toBe(
        `eve_tools_tpm2_listkeys: permission denied connecting to the TPM service at unix:${sock} (from --service): this user may not open it (run as a user allowed to, or check --service)\n`,
      );
    } finally {
      s.close();
    }
  });

  it('names an output directory and a secret file this user may not use (exit 6)', () => {
    const bin = tool('eve_tools_tpm2_pubgetaik');
    const ro = join(dir, 'read-only');
    spawnSync('mkdir', ['-m', '0555', ro]);
    const out = unprivileged(bin, ['-k', '0x81010000', '-f', join(ro, 'ak.pem'), '--service', 'unix:/nonexistent']);
    expect(out.status, out.stderr).toBe(EXIT.FILE);
    expect(out.stderr).toBe(`eve_tools_tpm2_pubgetaik: cannot write public key file '${join(ro, 'ak.pem')}': permission denied\n`);
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'x\n', { mode: 0o000 });
    const sec = unprivileged(bin, ['-k', '0x81010000', '--secret-file', secret, '--service', 'unix:/nonexistent']);
    expect(sec.status, sec.stderr).toBe(EXIT.FILE);
    expect(sec.stderr).toBe(`eve_tools_tpm2_pubgetaik: cannot read secret file '${secret}': permission denied\n`);
  });
});
