/**
 * Inherited listeners: `fd:N`, `systemd` and the LISTEN_FDS protocol. The parsing and the
 * environment rules are checked in-process; then the real bundled bin is started with real
 * passed sockets: a unix one by systemd's own `systemd-socket-activate` (which sets
 * LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES and execs the service on the first connection), and a
 * tcp one made here and passed as fd 3 through spawn's stdio, with LISTEN_PID set to the
 * child's pid by a `sh -c 'export LISTEN_PID=$$; exec …'` wrapper. Requests then go over them,
 * and the request log must name the right kind of listener (identity depends on it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatAddress, parseAddress } from '../../src/service/protocol/address.js';
import { ConfigError, listenAddress } from '../../src/service/config.js';
import { ListenError } from '../../src/service/http/listeners.js';
import { listenTargets, resetSystemdSocketsForTest, takeSystemdSockets } from '../../src/service/http/socket-activation.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { loadVsockAddon, type VsockAddon } from '../../src/service/vsock/index.js';
import { ADDON_ENV, addonCandidates } from '../../src/service/vsock/addon.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { buildServiceBin, waitHealthy, type ServiceProcess } from './child.js';
import { eventually } from './env.js';

describe('fd:N and systemd listen addresses', () => {
  it('parses fd:N (N ≥ 3) and systemd for listening only', () => {
    expect(parseAddress('fd:3', 'listen')).toEqual({ kind: 'fd', fd: 3 });
    expect(parseAddress('fd:12', 'listen')).toEqual({ kind: 'fd', fd: 12 });
    expect(parseAddress('systemd', 'listen')).toEqual({ kind: 'systemd' });
    expect(formatAddress({ kind: 'fd', fd: 4 })).toBe('fd:4');
    for (const bad of ['fd:', 'fd:0', 'fd:2', 'fd:03', 'fd:x', 'fd:-1', 'fd:3.0', 'fd:1234567890']) {
      expect(() => parseAddress(bad, 'listen'), bad).toThrow(/bad descriptor/);
    }
    expect(() => parseAddress('fd:3', 'connect')).toThrow(/unknown address fd:3: use unix:PATH, tcp:HOST:PORT or vsock:CID:PORT/);
    expect(() => parseAddress('systemd', 'connect')).toThrow(/unknown address/);
  });

  it('is accepted by the configuration', () => {
    expect(listenAddress('fd:3', false)).toEqual({ kind: 'fd', fd: 3 });
    expect(listenAddress('systemd', false)).toEqual({ kind: 'systemd' });
    expect(() => listenAddress('fd:1', false)).toThrow(ConfigError);
  });

  it('takes LISTEN_FDS only when LISTEN_PID is ours, and clears the variables either way', () => {
    resetSystemdSocketsForTest();
    const other: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'x', KEEP: 'y' };
    expect(takeSystemdSockets(other, 4242)).toEqual([]);
    expect(other).toEqual({ KEEP: 'y' });

    resetSystemdSocketsForTest();
    const ours: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '4242', LISTEN_FDNAMES: 'api:' };
    expect(takeSystemdSockets(ours, 4242)).toEqual([
      { fd: 3, name: 'api' },
      { fd: 4, name: undefined },
    ]);
    expect(ours).toEqual({});
    // Read once: the same answer later, even though the variables are gone.
    expect(takeSystemdSockets({}, 4242)).toHaveLength(2);

    resetSystemdSocketsForTest();
    expect(() => takeSystemdSockets({ LISTEN_FDS: 'two', LISTEN_PID: '7' }, 7)).toThrow(/bad LISTEN_FDS="two"/);
    resetSystemdSocketsForTest();
  });

  it('expands systemd to the passed descriptors, and refuses it when none were passed', () => {
    resetSystemdSocketsForTest();
    expect(listenTargets(['unix:/tmp/x.sock', 'systemd'], { LISTEN_FDS: '2', LISTEN_PID: '9', LISTEN_FDNAMES: 'a:b' }, 9)).toEqual([
      { address: { kind: 'unix', path: '/tmp/x.sock' } },
      { address: { kind: 'fd', fd: 3 }, name: 'a' },
      { address: { kind: 'fd', fd: 4 }, name: 'b' },
    ]);
    resetSystemdSocketsForTest();
    expect(() => listenTargets(['systemd'], { LISTEN_FDS: '1', LISTEN_PID: '8' }, 9)).toThrow(ListenError);
    resetSystemdSocketsForTest();
    expect(() => listenTargets(['vsock:8877'], { LISTEN_FDS: '2', LISTEN_PID: '9' }, 9)).toThrow(/systemd passed 2 sockets \(fd 3, 4\) that no --listen names: add --listen systemd/);
    resetSystemdSocketsForTest();
    expect(listenTargets(['fd:3'], { LISTEN_FDS: '1', LISTEN_PID: '9' }, 9)).toEqual([{ address: { kind: 'fd', fd: 3 } }]);
    resetSystemdSocketsForTest();
    expect(() => listenTargets(['systemd', 'fd:3'], { LISTEN_FDS: '1', LISTEN_PID: '9' }, 9)).toThrow(/fd:3 is named twice/);
    resetSystemdSocketsForTest();
  });
});

/**
 * The vsock addon if it loads (CI builds it: missing there fails), and whether this kernel makes
 * AF_VSOCK sockets (a kernel matter no package installs: without it the test is skipped, loudly).
 */
function vsockHere(): { addon?: VsockAddon; kernel: boolean } {
  let addon: VsockAddon;
  try {
    addon = loadVsockAddon();
  } catch {
    return { kernel: false };
  }
  try {
    addon.close(addon.socket());
    return { addon, kernel: true };
  } catch {
    console.warn('skipping the inherited AF_VSOCK test: this kernel has no AF_VSOCK');
    return { addon, kernel: false };
  }
}
const vsock = vsockHere();

const haveActivate = spawnSync('systemd-socket-activate', ['--help'], { encoding: 'utf8' }).status === 0;

interface LogLine {
  event?: string;
  address?: string;
  name?: string;
  listener?: string;
  op?: string;
  msg?: string;
}

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !haveActivate, 'swtpm or systemd-socket-activate (Debian package systemd)'))('the bin on inherited sockets', () => {
  let bin: { bin: string; cleanup: () => void };
  let swtpm: SwtpmInstance;
  let dir: string;
  let n = 0;
  const children = new Set<ChildProcess>();
  const servers: Server[] = [];

  const serveArgs = (listen: string): string[] => [
    '--tpm',
    `swtpm:unix:${swtpm.sockPath}`,
    '--listen',
    listen,
    '--single-tenant',
    '--state-dir',
    join(dir, `state-${++n}`),
    '--log-level',
    'info',
  ];

  /** Starts `file args` with extra descriptors from index 3 on; stderr (the JSON log) kept. */
  function start(file: string, args: string[], extraFds: number[] = [], env: Record<string, string> = {}): ServiceProcess & { log(): LogLine[] } {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe', ...extraFds], env: { ...process.env, ...env } });
    children.add(child);
    let all = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (all += s));
    child.stdout!.resume();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    const log = (): LogLine[] =>
      all
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine);
    return { child, stderr: () => all.slice(-8192), exited, log };
  }

  async function stop(p: ServiceProcess): Promise<void> {
    p.child.kill('SIGTERM');
    await p.exited;
  }

  /** A listening socket made here; its descriptor is what the child inherits. */
  async function tcpSocket(host: string): Promise<{ server: Server; fd: number; port: number }> {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen({ host, port: 0 }, r));
    // Node exposes no public descriptor of a server: its libuv handle's fd (test-only use).
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    return { server, fd, port: (server.address() as { port: number }).port };
  }

  /** Runs until exit (a start that must fail); returns exit code and stderr. */
  async function failedStart(file: string, args: string[], extraFds: number[] = [], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
    const p = start(file, args, extraFds, env);
    const { code } = await p.exited;
    return { code, stderr: p.stderr() };
  }

  beforeAll(async () => {
    bin = buildServiceBin();
    swtpm = await startSwtpm();
    dir = await mkdtemp(join(tmpdir(), 'svc-fd-'));
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) s.close();
    const waits = [...children].map((c) => new Promise((r) => c.once('exit', r)));
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(waits);
  });
  afterAll(async () => {
    await swtpm?.stop();
    bin?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves a unix socket passed by systemd-socket-activate (--listen systemd)', async () => {
    const sock = join(dir, 'activated.sock');
    const p = start('systemd-socket-activate', ['-l', sock, '--fdname=api', process.execPath, bin.bin, ...serveArgs('systemd')]);
    // The service is exec'd on the first connection: this health poll is what starts it.
    await waitHealthy(p, `unix:${sock}`, 30_000);
    expect(await new ServiceClient({ address: `unix:${sock}` }).listKeys()).toEqual([]);
    const lines = p.log();
    expect(lines.find((l) => l.event === 'listening')).toMatchObject({ address: 'fd:3 (unix)', name: 'api' });
    const served = lines.filter((l) => l.event === 'request');
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((l) => l.listener === 'unix')).toBe(true);
    await stop(p);
  });

  it('serves a tcp socket passed as fd 3 with LISTEN_FDS and LISTEN_PID set to the child', async () => {
    const { server, fd, port } = await tcpSocket('127.0.0.1');
    const p = start('sh', ['-c', 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"', 'sh', process.execPath, bin.bin, ...serveArgs('systemd')], [fd]);
    server.close(); // the child holds its own copy; this process must not accept on it
    const address = `tcp:127.0.0.1:${port}`;
    await waitHealthy(p, address, 30_000);
    expect(await new ServiceClient({ address }).listKeys()).toEqual([]);
    const lines = p.log();
    expect(lines.find((l) => l.event === 'listening')?.address).toBe(`fd:3 (${address})`);
    const served = lines.filter((l) => l.event === 'request');
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((l) => l.listener === 'tcp')).toBe(true);
    await stop(p);
  });

  it('serves an explicit --listen fd:3 next to an ordinary listener', async () => {
    const { server, fd, port } = await tcpSocket('127.0.0.1');
    const sock = join(dir, 'plain.sock');
    const p = start(process.execPath, [bin.bin, ...serveArgs('fd:3'), '--listen', `unix:${sock}`], [fd]);
    server.close();
    await waitHealthy(p, `tcp:127.0.0.1:${port}`, 30_000);
    await waitHealthy(p, `unix:${sock}`, 30_000);
    await stop(p);
  });

  it('refuses LISTEN_FDS meant for another process, and descriptors it cannot serve, with one line and exit 3', async () => {
    const other = await failedStart(process.execPath, [bin.bin, ...serveArgs('systemd')], [], { LISTEN_FDS: '1', LISTEN_PID: '1' });
    expect(other.code).toBe(3);
    expect(other.stderr).toMatch(/--listen systemd: no sockets were passed/);

    const closed = await failedStart(process.execPath, [bin.bin, ...serveArgs('fd:999')]);
    expect(closed.code).toBe(3);
    expect(closed.stderr).toMatch(/cannot listen on fd:999: descriptor not open/);

    const wide = await tcpSocket('0.0.0.0');
    const open = await failedStart(process.execPath, [bin.bin, ...serveArgs('fd:3')], [wide.fd]);
    expect(open.code).toBe(3);
    expect(open.stderr).toMatch(/refusing to serve fd:3 \(tcp:0\.0\.0\.0:\d+\): not a loopback address/);

    // A connected tcp socket (systemd Accept=yes would pass one): not a listener.
    const peer = await tcpSocket('127.0.0.1');
    const conn = createConnection({ host: '127.0.0.1', port: peer.port });
    await new Promise<void>((r) => conn.once('connect', r));
    try {
      const connected = await failedStart(process.execPath, [bin.bin, ...serveArgs('fd:3')], [(conn as unknown as { _handle: { fd: number } })._handle.fd]);
      expect(connected.code).toBe(3);
      expect(connected.stderr).toMatch(/cannot listen on fd:3: not a listening unix or tcp socket[;,] /);
    } finally {
      conn.destroy();
    }

    // A datagram socket: libuv will not listen on it, the vsock module must not take it either.
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const udpFd = (udp as unknown as { _handle: { fd: number } })._handle.fd;
    try {
      const dgram = await failedStart(process.execPath, [bin.bin, ...serveArgs('fd:3')], [udpFd]);
      expect(dgram.code).toBe(3);
      expect(dgram.stderr).toMatch(/cannot listen on fd:3: not a listening unix or tcp socket[;,] /);
      expect(dgram.stderr).not.toMatch(/listening on/);
    } finally {
      udp.close();
    }
  });

  // No vsock loopback on a host (the transport is guest ↔ host), so no call is made over it
  // here: the guest suites do that. What is checked: the descriptor is recognised as AF_VSOCK
  // and served through the vsock module, not refused and not taken for unix or tcp.
  it.skipIf(skipUnlessCI(!vsock.addon, 'the vsock addon') || !vsock.kernel)('takes an inherited AF_VSOCK listening socket as vsock', async () => {
    const addon = vsock.addon!;
    const fd = addon.socket();
    let port = 0;
    try {
      // A free port: the kernel picks one when asked for VMADDR_PORT_ANY.
      addon.bind(fd, addon.VMADDR_CID_ANY, 0xffffffff);
      addon.listen(fd, 16);
      port = addon.getsockname(fd).port;
      // The bundled bin lives in a temp dir: point it at the addon this checkout has.
      const addonFile = addonCandidates(join(REPO_ROOT, 'src/service/vsock')).find((f) => existsSync(f))!;
      const p = start('sh', ['-c', 'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=vsock; exec "$@"', 'sh', process.execPath, bin.bin, ...serveArgs('systemd')], [fd], {
        [ADDON_ENV]: addonFile,
      });
      await eventually(() => p.log().some((l) => l.event === 'started') || p.child.exitCode !== null, 30_000, 'the service to start (or exit)');
      expect(p.log().find((l) => l.event === 'listening'), p.stderr()).toMatchObject({ address: `fd:3 (vsock:${port})`, name: 'vsock' });
      await stop(p);
      expect(p.child.exitCode, p.stderr()).toBe(0);
    } finally {
      addon.close(fd);
    }
  });
});
