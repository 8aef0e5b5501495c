/**
 * eve_tools_usage in-process against the real service (swtpm, unix socket, fixture cgroup and
 * interface trees): the table, --json, --watch as lines on a pipe and as redraws on a terminal,
 * --count, usage errors; and the interval figures (CPU %, rates) from two readings.
 */
import { PassThrough, Readable } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceClient } from '../../src/cli/client.js';
import { EXIT } from '../../src/cli/errors.js';
import { runTool, type CliIO } from '../../src/cli/run.js';
import { usage } from '../../src/cli/tools/usage.js';
import { intervalOf, usageLine } from '../../src/cli/tools/usage-view.js';
import type { Usage } from '../../src/service/protocol/messages.js';
import { FULL_CGROUP, writeNetif, writeTree } from '../usage/fixtures.js';
import { removeDir, startUsageEnv, tempDir, type UsageEnv } from '../service/usage-env.js';

let env: UsageEnv;
let dir: string;

beforeAll(async () => {
  dir = await tempDir();
  const net = join(dir, 'class-net');
  writeNetif(net, 'vif9', { rx_bytes: 300, tx_bytes: 4000 });
  env = await startUsageEnv(dir, [{ id: 'app', cgroup: writeTree(join(dir, 'cg'), FULL_CGROUP), netifs: ['vif9'] }, { id: 'plain' }], net);
});
afterAll(async () => {
  await env?.stop();
  if (dir) await removeDir(dir);
});

async function tool(argv: string[], o: { tenant?: string; tty?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  if (o.tty) Object.assign(stdout, { isTTY: true });
  const io: CliIO = {
    env: { EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SERVICE: env.unix, EVE_TOOLS_SECRET: env.secrets[o.tenant ?? 'app'] },
    stdout,
    stderr,
    stdin: Readable.from([]),
    createClient: createServiceClient,
  };
  const code = await runTool(usage, argv, io);
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

describe('eve_tools_usage', () => {
  it('prints a table of the host figures and the TPM share', async () => {
    const r = await tool([]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^app at \d{4}-\d\d-\d\dT/);
    expect(r.stdout).toMatch(/^CPU +123\.46 s \(user 100\.00, system 23\.46\), throttled 17 times \(0\.99 s\)$/m);
    expect(r.stdout).toMatch(/^memory +100\.0 MiB now, peak 150\.0 MiB$/m);
    expect(r.stdout).toMatch(/^disk +read 97\.8 KiB, written 3\.9 MiB$/m);
    expect(r.stdout).toMatch(/^network +received 3\.9 KiB, sent 300 B$/m);
    expect(r.stdout).toMatch(/^TPM keys +0 of 8 \(8 left\)$/m);
  });

  it('an unconfigured app reads why, with exit 0', async () => {
    const r = await tool([], { tenant: 'plain' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^cgroup +no cgroup is configured for this app: /m);
    expect(r.stdout).toMatch(/^network +no network interface is configured for this app: /m);
  });

  it('--json prints the raw counters and the time of the reading', async () => {
    const r = await tool(['--json']);
    expect(r.code).toBe(0);
    const u = JSON.parse(r.stdout) as Usage;
    expect(u).toMatchObject({ tenant: 'app', cgroup: { cpu: { usageUsec: 123456789 } }, network: { rxBytes: 4000, txBytes: 300 } });
    expect(Date.parse(u.timestamp)).not.toBeNaN();
  });

  it('--watch with --count N on a pipe prints N lines; the second on has the interval figures', async () => {
    const r = await tool(['--watch', '0.05', '--count', '3']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(/^\S+Z cpu_s=123\.457 (cpu_pct=\S+ )?mem_bytes=104857600 mem_peak_bytes=157286400 rx_bytes=4000 tx_bytes=300 /);
    expect(lines[0]).not.toMatch(/cpu_pct=/);
    expect(lines[1]).toMatch(/ cpu_pct=0\.0 /);
    expect(lines[2]).toMatch(/ rx_bps=0 tx_bps=0 /);
  });

  it('--watch --json prints one object per reading', async () => {
    const r = await tool(['--watch', '0.05', '--count', '2', '--json']);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.map((l) => (JSON.parse(l) as Usage).tenant)).toEqual(['app', 'app']);
  });

  it('--watch on a terminal redraws the table in place', async () => {
    const r = await tool(['--watch', '0.05', '--count', '2'], { tty: true });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\x1b[H\x1b[2J')).toHaveLength(3);
    expect(r.stdout).toMatch(/, 0\.0 % over 0\.\d s/);
  });

  it('--help says what it shows and how to watch', async () => {
    const r = await tool(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: eve_tools_usage \[options\]/);
    expect(r.stdout).toMatch(/--watch <seconds>/);
    expect(r.stdout).toMatch(/--count <n>/);
  });

  it('bad options are usage errors (exit 2), before any request', async () => {
    const sent = env.commands.length;
    for (const [args, msg] of [
      [['--count', '3'], '--count needs --watch SECONDS'],
      [['--watch', '0'], "--watch: '0' is not a number of seconds between 0 and 86400"],
      [['--watch', '1', '--count', '0'], "--count: '0' is not a number of readings between 1 and 1000000"],
    ] as const) {
      const r = await tool([...args]);
      expect(r.code, args.join(' ')).toBe(EXIT.USAGE);
      expect(r.stderr).toBe(`eve_tools_usage: ${msg}\n`);
    }
    expect(env.commands.length).toBe(sent);
  });
});

describe('interval figures', () => {
  const reading = (t: string, usageUsec: number, rx: number, read: number, tpmTimeMs = 0): Usage => ({
    tenant: 'a',
    timestamp: t,
    cgroup: {
      available: true,
      cpu: { available: true, usageUsec, userUsec: usageUsec, systemUsec: 0 },
      memory: { available: true, currentBytes: 1 },
      io: { available: true, readBytes: read, writeBytes: 0, devices: [] },
      pids: { available: true, current: 1 },
    },
    network: { available: true, rxBytes: rx, txBytes: 0, interfaces: [] },
    tpm: { since: '2025-01-01T00:00:00.000Z', requests: [], tpmTimeMs, keys: { held: 0, max: 8, left: 8 }, queueWaits: { count: 0, totalMs: 0, maxMs: 0 } },
  });

  it('CPU % of one CPU and byte rates over the time between the readings', () => {
    const a = reading('2025-01-01T00:00:00.000Z', 1_000_000, 1000, 0);
    const b = reading('2025-01-01T00:00:02.000Z', 2_500_000, 5096, 2048);
    expect(intervalOf(a, b)).toEqual({ seconds: 2, cpuPercent: 75, rxPerSec: 2048, txPerSec: 0, readPerSec: 1024, writePerSec: 0, tpmMs: 0 });
    expect(usageLine(b, intervalOf(a, b))).toContain('cpu_s=2.500 cpu_pct=75.0 mem_bytes=1 rx_bytes=5096 tx_bytes=0 rx_bps=2048 tx_bps=0 read_bytes=2048');
  });

  it('TPM time over the interval, from the totals', () => {
    const a = reading('2025-01-01T00:00:00.000Z', 0, 0, 0, 10.5);
    const b = reading('2025-01-01T00:00:05.000Z', 0, 0, 0, 13);
    expect(intervalOf(a, b)?.tpmMs).toBe(2.5);
    expect(usageLine(b, intervalOf(a, b))).toContain('tpm_ms=13 tpm_ms_interval=2.500 keys=0/8');
  });

  it('no figure from a counter that went back (a restarted cgroup) or from one reading', () => {
    const a = reading('2025-01-01T00:00:00.000Z', 5_000_000, 1000, 0);
    const b = { ...reading('2025-01-01T00:00:01.000Z', 10, 10, 0), tpm: { ...a.tpm, since: '2025-01-01T00:00:00.500Z' } };
    expect(intervalOf(a, b)).toEqual({ seconds: 1, txPerSec: 0, readPerSec: 0, writePerSec: 0 });
    expect(intervalOf(undefined, b)).toBeUndefined();
  });
});
