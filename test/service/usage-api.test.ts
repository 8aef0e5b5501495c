/**
 * GET /v1/usage and the stats socket on the real service (swtpm, unix sockets, fixture cgroup
 * and interface trees in the kernel's formats): each tenant sees only its own figures, an
 * unconfigured or broken source is a 200 with the reason, the TPM share counts a sign and a
 * refusal, a reading never reaches the TPM, and the admin socket is the host's alone.
 */
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Usage } from '../../src/service/protocol/messages.js';
import { statsSocketPath } from '../../src/service/usage/stats-socket.js';
import type { Stats } from '../../src/service/usage/stats.js';
import { BARE_CGROUP, FULL_CGROUP, writeNetif, writeTree } from '../usage/fixtures.js';
import { failure } from './env.js';
import { httpText, rawRequest } from './raw.js';
import { removeDir, startUsageEnv, tempDir, type UsageEnv } from './usage-env.js';

let env: UsageEnv;
let dir: string;

beforeAll(async () => {
  dir = await tempDir();
  const net = join(dir, 'class-net');
  writeNetif(net, 'vifA', { rx_bytes: 100, tx_bytes: 2000 });
  writeNetif(net, 'vifB', { rx_bytes: 7, tx_bytes: 8 });
  const broken = writeTree(join(dir, 'cg-broken'), { ...FULL_CGROUP, 'cpu.stat': 'nonsense\n', 'memory.current': '-5\n' });
  env = await startUsageEnv(
    dir,
    [
      { id: 'alice', cgroup: writeTree(join(dir, 'cg-alice'), FULL_CGROUP), netifs: ['vifA'] },
      { id: 'bob', cgroup: writeTree(join(dir, 'cg-bob'), BARE_CGROUP), netifs: ['vifB', 'vifGone'] },
      { id: 'carol' },
      { id: 'dave', cgroup: broken },
      { id: 'erin', cgroup: join(dir, 'cg-not-there') },
    ],
    net,
  );
});
afterAll(async () => {
  await env?.stop();
  if (dir) await removeDir(dir);
});

const usageOf = (t: string): Promise<Usage> => env.client(t).request('usage', {});

describe('GET /v1/usage', () => {
  it("gives each tenant its own cgroup and interfaces, and nothing of another's", async () => {
    const a = await usageOf('alice');
    expect(a.tenant).toBe('alice');
    expect(Date.parse(a.timestamp)).not.toBeNaN();
    expect(a.cgroup).toMatchObject({ available: true, cpu: { usageUsec: 123456789, throttledUsec: 987654 }, memory: { currentBytes: 104857600, peakBytes: 157286400 }, pids: { current: 7 } });
    expect(a.network).toMatchObject({ available: true, rxBytes: 2000, txBytes: 100, interfaces: [{ name: 'vifA', available: true }] });

    const b = await usageOf('bob');
    expect(b.tenant).toBe('bob');
    expect(b.cgroup).toMatchObject({ available: true, cpu: { usageUsec: 4408 }, memory: { available: false, reason: 'memory.current does not exist' } });
    expect(b.network).toMatchObject({ rxBytes: 8, txBytes: 7 });
    if (!b.network.available) throw new Error('network');
    expect(b.network.interfaces.map((i) => i.name)).toEqual(['vifB', 'vifGone']);
    expect(b.network.interfaces[1]).toMatchObject({ available: false, reason: 'interface vifGone does not exist on the host (is the app running?)' });
    // Nothing in bob's answer is alice's.
    expect(JSON.stringify(b)).not.toMatch(/123456789|vifA|alice/);
  });

  it('takes no parameter that could name another source', async () => {
    const e = await failure(env.client('alice').request('usage', {}, { query: { tenant: 'bob' } as never }));
    expect(e.status).toBe(400);
    const r = await rawRequest(env.unix, httpText('GET', '/v1/usage', { Authorization: `Bearer ${env.secrets.alice}`, 'Content-Type': 'application/json' }, '{"cgroup":"/"}'));
    expect(r.status).toBe(400);
    const anon = await rawRequest(env.unix, httpText('GET', '/v1/usage'));
    expect(anon.status).toBe(401);
  });

  it('an unconfigured tenant gets 200: "not configured" for each source, and its TPM share', async () => {
    const c = await usageOf('carol');
    expect(c.cgroup).toEqual({ available: false, configured: false, reason: expect.stringMatching(/^no cgroup is configured for this app: .*--cgroup PATH$/) as unknown });
    expect(c.network).toEqual({ available: false, configured: false, reason: expect.stringMatching(/^no network interface is configured .*--netif NAME$/) as unknown });
    expect(c.tpm.keys).toEqual({ held: 0, max: 8, left: 8 });
  });

  it('bad or missing files: 200 with the reasons, never a 5xx', async () => {
    const d = await usageOf('dave');
    if (!d.cgroup.available) throw new Error('cgroup');
    expect(d.cgroup.cpu).toEqual({ available: false, configured: true, reason: 'cpu.stat lacks usage_usec, user_usec or system_usec' });
    expect(d.cgroup.memory).toEqual({ available: false, configured: true, reason: 'memory.current does not hold a counter ("-5")' });
    expect(d.cgroup.pids).toMatchObject({ available: true, current: 7 });
    expect((await usageOf('erin')).cgroup).toEqual({ available: false, configured: true, reason: "the app's cgroup does not exist (is the app running?)" });
  });

  it('reads move with the files, and never reach the TPM', async () => {
    const sent = env.commands.length;
    writeFileSync(join(dir, 'cg-alice/memory.current'), '209715200\n');
    const a = await usageOf('alice');
    expect(a.cgroup.available && a.cgroup.memory.available && a.cgroup.memory.currentBytes).toBe(209715200);
    expect(env.commands.length).toBe(sent);
  });

  it("accounts the tenant's TPM share: a sign, a refusal, TPM time, keys, queue waits", async () => {
    const alice = env.client('alice');
    const key = await alice.createKey({ type: 'ecc' });
    await alice.sign(key.handle, { message: new TextEncoder().encode('hello') });
    const bobKey = await env.client('bob').createKey({ type: 'ecc' });
    expect((await failure(alice.sign(bobKey.handle, { message: new TextEncoder().encode('x') }))).status).toBe(403);

    const t = (await usageOf('alice')).tpm;
    const op = (name: string) => t.requests.find((r) => r.op === name);
    expect(op('create-key')).toEqual({ op: 'create-key', count: 1, refused: 0 });
    expect(op('sign')).toEqual({ op: 'sign', count: 2, refused: 1 });
    // Durations are measured (their sums are checked exactly in test/usage/accounting.test.ts): here, their form.
    expect(Number.isFinite(t.tpmTimeMs) && t.tpmTimeMs >= 0).toBe(true);
    expect(t.keys).toEqual({ held: 1, max: 8, left: 7 });
    // create-key and sign are one queue job each here (a persist may add one).
    expect(t.queueWaits.count).toBeGreaterThanOrEqual(2);
    expect([t.queueWaits.maxMs, t.queueWaits.totalMs].every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    // bob's refusal-free share is his own; both count from the same service start.
    const b = (await usageOf('bob')).tpm;
    expect(new Date(t.since).toISOString()).toBe(t.since);
    expect(b.since).toBe(t.since);
    expect(b.requests.find((r) => r.op === 'sign')).toBeUndefined();
    expect(b.keys.held).toBe(1);
  });
});

function statsGet(path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: statsSocketPath(env.stateDir), path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the stats socket', () => {
  it('is a 0600 socket in the state directory', () => {
    const st = statSync(statsSocketPath(env.stateDir));
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('GET /stats: every tenant, with its figures', async () => {
    const r = await statsGet('/stats');
    expect(r.status).toBe(200);
    const s = JSON.parse(r.body) as Stats;
    expect(s.tenants.map((u) => u.tenant)).toEqual(['alice', 'bob', 'carol', 'dave', 'erin']);
    expect(s.tenants[0]!.cgroup).toMatchObject({ cpu: { usageUsec: 123456789 } });
    expect(s.tenants[2]!.cgroup).toMatchObject({ configured: false });
  });

  it('GET /metrics: Prometheus text with per-app samples', async () => {
    const r = await statsGet('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const lines = r.body.split('\n');
    expect(lines).toContain('# TYPE eve_app_cpu_seconds_total counter');
    expect(lines).toContain('eve_app_cpu_seconds_total{tenant="alice"} 123.456789');
    expect(lines).toContain('eve_app_cpu_seconds_total{tenant="bob"} 0.004408');
    expect(lines).toContain('eve_app_network_receive_bytes_total{tenant="alice",interface="vifA"} 2000');
    expect(lines).toContain('eve_app_tpm_keys_max{tenant="carol"} 8');
    expect(lines.filter((l) => l.startsWith('eve_app_memory_bytes{'))).toEqual(['eve_app_memory_bytes{tenant="alice"} 209715200']);
    // Every sample line is NAME{labels} NUMBER.
    for (const l of lines.filter((x) => x && !x.startsWith('#'))) expect(l).toMatch(/^[a-z_]+\{[^}]*\} -?[0-9.e+-]+$/);
  });

  it('anything else is a 404 that says what it serves', async () => {
    const r = await statsGet('/v1/usage');
    expect(r.status).toBe(404);
    expect(r.body).toMatch(/GET \/stats .* GET \/metrics/);
  });

  it("is not on the tenants' listener", async () => {
    for (const p of ['/stats', '/metrics']) {
      const r = await rawRequest(env.unix, httpText('GET', p, { Authorization: `Bearer ${env.secrets.alice}` }));
      expect(r.status, p).toBe(404);
    }
  });

  it('an unprivileged local user cannot connect', () => {
    if (process.getuid?.() !== 0 || spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }).status !== 0) {
      console.warn('unprivileged connect not tried: needs root and setpriv');
      return;
    }
    const script = `require('net').createConnection(${JSON.stringify(statsSocketPath(env.stateDir))}).on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(1); })`;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stdout.trim()).toBe('EACCES');
  });
});
