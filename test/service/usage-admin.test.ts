/**
 * The usage side of the service's command line, as a built child process: `tenant add
 * --cgroup --netif`, `tenant set` (picked up by a running service on reload, no restart), and
 * `stats` in its three forms against the running service's stats socket.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient } from '../../src/service/client/client.js';
import type { Stats } from '../../src/service/usage/stats.js';
import { startSwtpm, type SwtpmInstance } from '../helpers/swtpm.js';
import { BARE_CGROUP, FULL_CGROUP, writeTree } from '../usage/fixtures.js';
import { buildServiceBin, killAll, runBin, spawnService, waitHealthy } from './child.js';
import { eventually } from './env.js';

let bin: ReturnType<typeof buildServiceBin>;
let swtpm: SwtpmInstance;
const dir = mkdtempSync(join(tmpdir(), 'usage-admin-'));
const tenants = join(dir, 'tenants.json');
const stateDir = join(dir, 'state');
const cgA = writeTree(join(dir, 'cg-a'), FULL_CGROUP);
const cgB = writeTree(join(dir, 'cg-b'), BARE_CGROUP);

beforeAll(async () => {
  bin = buildServiceBin();
  swtpm = await startSwtpm();
});
afterAll(async () => {
  await killAll();
  await swtpm?.stop();
  bin?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const fileTenants = (): Array<Record<string, unknown>> => (JSON.parse(readFileSync(tenants, 'utf8')) as { tenants: Array<Record<string, unknown>> }).tenants;
const secretOf = (stdout: string): string => (JSON.parse(stdout) as { secret: string }).secret;

describe('eve-tpm-service and usage', () => {
  let secretA = '';

  it('tenant add --cgroup --netif (repeatable) stores the sources', () => {
    const r = runBin(bin.bin, ['tenant', 'add', '--id', 'app-a', '--tenants', tenants, '--cgroup', cgA, '--netif', 'vif1.0', '--netif', 'vif1.1', '--json']);
    expect(r.stderr).toMatch(/Tenant app-a added/);
    expect(r.status).toBe(0);
    secretA = secretOf(r.stdout);
    expect(fileTenants()[0]).toMatchObject({ id: 'app-a', cgroup: cgA, netifs: ['vif1.0', 'vif1.1'] });
    expect(runBin(bin.bin, ['tenant', 'add', '--id', 'app-b', '--tenants', tenants, '--json']).status).toBe(0);
    const list = runBin(bin.bin, ['tenant', 'list', '--tenants', tenants, '--state-dir', stateDir]);
    expect(list.stdout).toMatch(new RegExp(`^app-a record=[0-9a-f]{16} maxKeys=8 secret=yes cgroup=${cgA} netifs=vif1.0,vif1.1 keys=0$`, 'm'));
    expect(list.stdout).toMatch(/^app-b record=[0-9a-f]{16} maxKeys=8 secret=yes keys=0$/m);
  });

  it('refuses a relative or dotted cgroup, a bad interface name, a source another tenant has', () => {
    for (const [args, msg] of [
      [['--cgroup', 'relative/dir'], /cgroup must be an absolute directory path/],
      [['--cgroup', '/sys/fs/cgroup/../etc'], /cgroup must be an absolute directory path/],
      [['--netif', 'a/b'], /netifs\[0\] must be an interface name/],
      [['--cgroup', cgA], /already belongs to tenant app-a/],
      [['--netif', 'vif1.1'], /interface vif1.1 already belongs to tenant app-a/],
    ] as const) {
      const r = runBin(bin.bin, ['tenant', 'add', '--id', 'app-x', '--tenants', tenants, ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    expect(fileTenants().map((t) => t.id)).toEqual(['app-a', 'app-b']);
  });

  it('stats without a running service says so', () => {
    const r = runBin(bin.bin, ['stats', '--state-dir', stateDir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`eve-tpm-service: cannot reach the stats socket ${join(stateDir, 'stats.sock')}: is the service running with this --state-dir?\n`);
  });

  it('with the service running: tenant set is picked up on reload; stats prints table, JSON and Prometheus text', async () => {
    const sock = join(dir, 'svc.sock');
    const svc = spawnService(bin.bin, ['--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', `unix:${sock}`, '--tenants', tenants, '--state-dir', stateDir, '--log-level', 'warn']);
    await waitHealthy(svc, `unix:${sock}`);
    const a = new ServiceClient({ address: `unix:${sock}`, secret: secretA, timeoutMs: 10_000 });
    expect((await a.request('usage', {})).cgroup).toMatchObject({ available: true, cpu: { usageUsec: 123456789 } });

    const set = runBin(bin.bin, ['tenant', 'set', '--id', 'app-a', '--tenants', tenants, '--cgroup', cgB, '--no-netif']);
    expect(set.stdout).toBe(`Tenant app-a: cgroup ${cgB}, interfaces none.\n`);
    expect(set.status).toBe(0);
    // SIGHUP reloads at once (the 2 s file watch would too, a little later).
    svc.child.kill('SIGHUP');
    await eventually(async () => {
      const u = await a.request('usage', {});
      return u.cgroup.available && u.cgroup.cpu.available && u.cgroup.cpu.usageUsec === 4408 && !u.network.available;
    }, 20_000, 'the running service to pick up tenant set');

    const json = runBin(bin.bin, ['stats', '--state-dir', stateDir, '--json']);
    expect(json.status).toBe(0);
    const s = JSON.parse(json.stdout) as Stats;
    expect(s.tenants.map((t) => t.tenant)).toEqual(['app-a', 'app-b']);
    expect(s.tenants[0]!.tpm.requests.find((r) => r.op === 'usage')!.count).toBeGreaterThanOrEqual(2);

    const table = runBin(bin.bin, ['stats', '--state-dir', stateDir]);
    expect(table.status).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^TENANT +CPU_S +MEM_MIB .* KEYS +WAITS\/MAX_MS$/);
    expect(lines[1]).toMatch(/^app-a +0\.00 +- +- /);
    expect(lines[2]).toMatch(/^app-b +- +- /);
    expect(table.stdout).toMatch(/app-b: no cgroup is configured for this app/);

    const prom = runBin(bin.bin, ['stats', '--state-dir', stateDir, '--prometheus']);
    expect(prom.status).toBe(0);
    expect(prom.stdout).toContain('eve_app_cpu_seconds_total{tenant="app-a"} 0.004408\n');

    expect(runBin(bin.bin, ['tenant', 'set', '--id', 'nobody', '--tenants', tenants, '--no-cgroup']).stderr).toMatch(/no tenant nobody/);
    expect(runBin(bin.bin, ['tenant', 'set', '--id', 'app-a', '--tenants', tenants]).status).toBe(2);
    svc.child.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  });
});
