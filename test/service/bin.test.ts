/**
 * The eve-tpm-service executable: tenant administration (add prints the secret once and a
 * cloud-init snippet, the file keeps only a hash; list; remove --purge with the service
 * running and stopped), listener start-up errors (vsock unavailable, non-loopback tcp, a file
 * in the way of the unix socket, a stale socket), and SIGTERM draining requests in flight.
 */
import { createHash } from 'node:crypto';
import { statSync, writeFileSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient } from '../../src/service/client/client.js';
import { Tpm, listPersistentHandles } from '../../src/tpm/index.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { buildServiceBin, killAll, runBin, spawnService, waitHealthy } from './child.js';
import { skipUnlessCI } from '../helpers/ci.js';

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('eve-tpm-service executable', () => {
  let bin: { bin: string; cleanup: () => void };
  let swtpm: SwtpmInstance;
  let dir: string;
  let tenants: string;
  let stateDir: string;
  const serveArgs = (sock: string, extra: string[] = []): string[] => [
    '--tpm',
    `swtpm:unix:${swtpm.sockPath}`,
    '--listen',
    `unix:${sock}`,
    '--tenants',
    tenants,
    '--state-dir',
    stateDir,
    '--key-store',
    'tpm',
    '--log-level',
    'info',
    ...extra,
  ];
  const addTenant = (id: string, extra: string[] = []): string => {
    const r = runBin(bin.bin, ['tenant', 'add', '--id', id, '--tenants', tenants, ...extra]);
    expect(r.status, r.stderr).toBe(0);
    return /Secret \(shown only now; only its hash is stored\):\n {2}(\S+)/.exec(r.stdout)![1]!;
  };

  beforeAll(async () => {
    bin = buildServiceBin();
    swtpm = await startSwtpm();
    dir = await mkdtemp(join(tmpdir(), 'svc-bin-'));
    tenants = join(dir, 'tenants.json');
    stateDir = join(dir, 'state');
  });
  afterAll(async () => {
    await killAll();
    await swtpm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    bin?.cleanup();
  });

  it('tenant add prints the secret once and stores only its hash', () => {
    const r = runBin(bin.bin, ['tenant', 'add', '--id', 'app1', '--cid', '7', '--max-keys', '3', '--tenants', tenants]);
    expect(r.status, r.stderr).toBe(0);
    const secret = /Secret \(shown only now; only its hash is stored\):\n {2}(\S+)/.exec(r.stdout)![1]!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The human text is on stderr; the user-data only with --user-data (test/cli/user-data.test.ts).
    expect(r.stdout).toBe(`Secret (shown only now; only its hash is stored):\n  ${secret}\n`);
    expect(r.stderr).toMatch(/^Tenant app1 added \(CID 7\), quota 3 keys/);
    const file = readFileSync(tenants, 'utf8');
    expect(file).not.toContain(secret);
    expect(JSON.parse(file)).toEqual({
      tenants: [{ id: 'app1', uid: expect.stringMatching(/^[0-9a-f]{16}$/), secretHash: 'sha256:' + createHash('sha256').update(secret).digest('hex'), maxKeys: 3, cid: 7 }],
    });
    expect(statSync(tenants).mode & 0o777).toBe(0o600);
    const dup = runBin(bin.bin, ['tenant', 'add', '--id', 'app1', '--tenants', tenants]);
    expect(dup.status).toBe(2);
    expect(dup.stderr).toContain('already exists');
    expect(runBin(bin.bin, ['tenant', 'add', '--id', 'app9', '--cid', '7', '--tenants', tenants]).status).toBe(2);
    expect(runBin(bin.bin, ['tenant', 'add', '--id', '../x', '--tenants', tenants]).status).toBe(2);
    // CIDs 0-2 are the hypervisor, loopback and host: never an application's.
    const host = runBin(bin.bin, ['tenant', 'add', '--id', 'app10', '--cid', '2', '--tenants', tenants]);
    expect(host.status).toBe(2);
    expect(host.stderr).toMatch(/cid/i);
  });

  it('purges a removed tenant through the running service, lists tenants, drains on SIGTERM', async () => {
    const s1 = addTenant('app2');
    const s2 = addTenant('app3');
    const sock = join(dir, 'a.sock');
    const svc = spawnService(bin.bin, serveArgs(sock));
    await waitHealthy(svc, `unix:${sock}`);
    const c1 = new ServiceClient({ address: `unix:${sock}`, secret: s1 });
    const c2 = new ServiceClient({ address: `unix:${sock}`, secret: s2 });
    const k1 = await c1.createKey({ type: 'ecc' });
    await c1.createKey({ type: 'ecc' });
    const k2 = await c2.createKey({ type: 'ecc' });

    const list = runBin(bin.bin, ['tenant', 'list', '--tenants', tenants, '--state-dir', stateDir, '--json']);
    const listed = JSON.parse(list.stdout) as { tenants: Array<{ id: string; keys: Array<{ handle: string }> }> };
    expect(listed.tenants.map((t) => [t.id, t.keys.length])).toEqual([
      ['app1', 0],
      ['app2', 2],
      ['app3', 1],
    ]);
    expect(runBin(bin.bin, ['tenant', 'list', '--tenants', tenants, '--state-dir', stateDir]).stdout).toContain(`  ${k1.handle} ecc sha256 committed tpm`);

    const rm1 = runBin(bin.bin, ['tenant', 'remove', '--id', 'app2', '--purge', '--tenants', tenants, '--state-dir', stateDir]);
    expect(rm1.status, rm1.stderr).toBe(0);
    expect(rm1.stdout).toContain('2 key(s) purged');
    // app2 can no longer authenticate; app3 is untouched.
    await expect(c1.listKeys()).rejects.toMatchObject({ status: 401 });
    expect((await c2.listKeys()).map((k) => k.handle)).toEqual([k2.handle]);
    expect(svc.stderr()).toContain('"event":"purged"');

    // SIGTERM while a streamed sign is in flight: it completes, then the process exits 0.
    let pushed = 0;
    const slow = Readable.from(
      (async function* () {
        for (; pushed < 30; pushed++) {
          yield Buffer.alloc(2048, pushed);
          await wait(20);
        }
      })(),
    );
    const signing = c2.sign(k2.handle, { message: slow });
    while (pushed < 5) await wait(10);
    svc.child.kill('SIGTERM');
    const r = await signing;
    expect(r.messageLength).toBe(30 * 2048);
    expect((await svc.exited).code).toBe(0);
    expect(svc.stderr()).toContain('"event":"stopped"');
  });

  it('purges directly (TPM objects evicted) when the service is stopped', async () => {
    const sock = join(dir, 'b.sock');
    const svc = spawnService(bin.bin, serveArgs(sock));
    await waitHealthy(svc, `unix:${sock}`);
    svc.child.kill('SIGTERM');
    await svc.exited;
    const r = runBin(bin.bin, ['tenant', 'remove', '--id', 'app3', '--purge', '--tenants', tenants, '--state-dir', stateDir, '--tpm', `swtpm:unix:${swtpm.sockPath}`]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 key(s) purged');
    const after = JSON.parse(runBin(bin.bin, ['tenant', 'list', '--tenants', tenants, '--state-dir', stateDir, '--json']).stdout) as {
      tenants: Array<{ id: string; keys: unknown[] }>;
    };
    expect(after.tenants).toEqual([expect.objectContaining({ id: 'app1', keys: [] })]);
    const tpm = new Tpm(swtpm.transport());
    expect(await listPersistentHandles(tpm)).toEqual([]); // every purged key was evicted
    await tpm.transport.close();
    expect(runBin(bin.bin, ['tenant', 'remove', '--id', 'nobody', '--tenants', tenants, '--state-dir', stateDir]).status).toBe(2);
  });

  it('gives clear start-up errors instead of crashing', async () => {
    const sock = join(dir, 'c.sock');
    // vsock: this machine either has no addon/AF_VSOCK or cannot identify peers; either way a
    // clear refusal (exit 3) — or, where vsock fully works, a running service.
    const v = spawnService(bin.bin, ['--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', 'vsock:18877', '--tenants', tenants, '--state-dir', join(dir, 'sv')]);
    const raced = await Promise.race([v.exited, wait(5000).then(() => undefined)]);
    if (raced) {
      expect(raced.code, v.stderr()).toBe(3);
      expect(v.stderr()).toMatch(/cannot start: .*vsock/);
      expect(v.stderr()).not.toMatch(/^\s+at /m); // a message, not a stack trace
    } else {
      v.child.kill('SIGTERM');
      await v.exited;
    }
    const nl = runBin(bin.bin, ['--listen', 'tcp:0.0.0.0:0', '--single-tenant', '--state-dir', join(dir, 'sx')]);
    expect(nl.status).toBe(2);
    expect(nl.stderr).toContain('not a loopback address');
    // A regular file where the socket should go is never deleted.
    writeFileSync(sock, 'precious');
    const f = runBin(bin.bin, serveArgs(sock));
    expect(f.status).toBe(3);
    expect(f.stderr).toContain('is not a socket');
    expect(readFileSync(sock, 'utf8')).toBe('precious');
    await rm(sock);
    // A stale socket (nobody listening) is replaced.
    // A stale socket (its server was killed) is replaced.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(sock).isSocket()).toBe(true);
    const svc = spawnService(bin.bin, serveArgs(sock));
    await waitHealthy(svc, `unix:${sock}`);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    svc.child.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
    // Missing tenants file without --single-tenant: a configuration error.
    expect(runBin(bin.bin, ['--listen', `unix:${join(dir, 'd.sock')}`, '--state-dir', join(dir, 'sy')]).status).toBe(2);
    // A --tenants file that is missing or not JSON: a configuration error naming the file, not a stack.
    const missing = join(dir, 'no-such-tenants.json');
    const m = runBin(bin.bin, ['--listen', `unix:${join(dir, 'd.sock')}`, '--tenants', missing, '--state-dir', join(dir, 'sy')]);
    expect(m.status, m.stderr).toBe(2);
    expect(m.stderr).toContain(`tenants file ${missing}: no such file`);
    expect(m.stderr).not.toMatch(/^\s+at /m);
    const garbled = join(dir, 'garbled-tenants.json');
    writeFileSync(garbled, '{"tenants": [');
    const g = runBin(bin.bin, ['--listen', `unix:${join(dir, 'd.sock')}`, '--tenants', garbled, '--state-dir', join(dir, 'sy')]);
    expect(g.status, g.stderr).toBe(2);
    expect(g.stderr).toContain(`tenants file ${garbled}: `);
  });

  it('refuses to share the state directory with a running service', async () => {
    const sock = join(dir, 'e.sock');
    const svc = spawnService(bin.bin, serveArgs(sock));
    await waitHealthy(svc, `unix:${sock}`);
    const second = runBin(bin.bin, serveArgs(join(dir, 'f.sock')));
    expect(second.status).toBe(3);
    expect(second.stderr).toContain('in use by process');
    svc.child.kill('SIGTERM');
    await svc.exited;
  });
});

/** Program-level behaviour shared with the tools (README EXIT STATUS, docs/SERVICE.md "Exit codes"); needs no TPM. */
describe('eve-tpm-service command line', () => {
  let bin: { bin: string; cleanup: () => void };
  let dir: string;
  beforeAll(async () => {
    bin = buildServiceBin();
    dir = await mkdtemp(join(tmpdir(), 'svc-cli-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    bin?.cleanup();
  });
  const usage = (args: string[], line: RegExp): void => {
    const r = runBin(bin.bin, args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(line);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  };

  it('reports usage errors as one line with exit 2, never the help', () => {
    usage(['--fo'], /^eve-tpm-service: unknown option '--fo' \(see eve-tpm-service serve --help\)\n$/);
    usage(['--max-connections'], /^eve-tpm-service: option '--max-connections <n>' argument missing/);
    usage(['--max-connections', 'many'], /expected a non-negative integer/);
    usage(['--key-store', 'disk'], /Allowed choices are blobs, tpm/);
    usage(['tenant', 'list', '--tenats', 'x'], /^eve-tpm-service: unknown option '--tenats' \(Did you mean --tenants\?\) \(see eve-tpm-service tenant list --help\)/);
    usage(['tenant', 'list'], /required option '--tenants <file>' not specified/);
    usage(['tenant', 'lst'], /unknown command 'lst' \(Did you mean list\?\)/);
    usage(['tenant'], /^eve-tpm-service: tenant needs a subcommand: add, list, remove, purge, set \(see eve-tpm-service tenant --help\)/);
    usage(['registry'], /registry needs a subcommand: rebuild/);
  });

  it('names an unknown subcommand as such, not as options of the default serve', () => {
    usage(['tenants', 'add', '--id', 'x'], /^eve-tpm-service: unknown command 'tenants' \(Did you mean tenant\?\) \(see eve-tpm-service --help\)\n$/);
    usage(['foo'], /^eve-tpm-service: unknown command 'foo' \(see eve-tpm-service --help\)\n$/);
  });

  it('prints its version for -v and --version, help for --help, with exit 0', () => {
    const version = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')).version as string;
    for (const flag of ['-v', '--version']) {
      const r = runBin(bin.bin, [flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`eve-tpm-service ${version}\n`);
    }
    const h = runBin(bin.bin, ['serve', '--help']);
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('--max-connections <n>');
    expect(h.stderr).toBe('');
  });

  it("finds serve's state directory without --state-dir: the default, or --config's", () => {
    const r = runBin(bin.bin, ['registry', 'rebuild']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('eve-tpm-service: no state directory /var/lib/eve-tpm-service\n');
    const config = join(dir, 'service.json');
    writeFileSync(config, JSON.stringify({ stateDir: join(dir, 'state') }));
    const c = runBin(bin.bin, ['registry', 'rebuild', '--config', config]);
    expect(c.stderr).toBe(`eve-tpm-service: no state directory ${join(dir, 'state')}\n`);
    const tenants = join(dir, 'tenants.json');
    writeFileSync(tenants, JSON.stringify({ tenants: [] }));
    const l = runBin(bin.bin, ['tenant', 'list', '--tenants', tenants, '--config', config]);
    expect(l.status, l.stderr).toBe(0);
    expect(l.stdout).toBe('no tenants\n');
  });

  it('exits 2 for a bad configuration and 3 when the state directory cannot be opened', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ maxConections: 1 }));
    usage(['--config', bad, '--single-tenant'], /unknown configuration key "maxConections"/);
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, '');
    const r = runBin(bin.bin, ['--single-tenant', '--tpm', 'swtpm:unix:/nonexistent', '--listen', `unix:${join(dir, 's.sock')}`, '--state-dir', join(file, 'sub'), '--log-level', 'silent']);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/^eve-tpm-service: cannot start: /m);
  });
});
