/**
 * swtpm test harness: starts swtpm (socket or chardev mode) and socat PTYs in fresh temp
 * directories, waits until they serve, and tears everything down again.
 *
 * Lifetime: call stop() in afterAll. As a backstop every child is SIGKILLed and every temp dir
 * removed when the test process exits, and (where util-linux `setpriv` supports it) children
 * are started with a parent-death signal, so even a SIGKILLed test worker leaves nothing behind.
 *
 * swtpm serves ONE connection at a time (later clients wait in the backlog). A PTY from
 * startPty() holds that connection for as long as socat runs, so do not mix a PTY and socket
 * transports on the same swtpm instance.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChardevTransport } from '../../src/tpm/transport/swtpm-chardev.js';
import { DeviceTransport, type DeviceTransportOptions } from '../../src/tpm/transport/device.js';
import { SwtpmSocketTransport } from '../../src/tpm/transport/swtpm-socket.js';
import type { TransportOptions } from '../../src/tpm/transport/base.js';
import type { Transport } from '../../src/tpm/transport/types.js';
import { Tpm } from '../../src/tpm/tpm.js';

// ---------------------------------------------------------------------------------------------
// availability

const availability = new Map<string, boolean>();
function runs(cmd: string, args: string[], expect?: RegExp): boolean {
  const key = [cmd, ...args].join(' ');
  let ok = availability.get(key);
  if (ok === undefined) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
    ok = r.status === 0 && (!expect || expect.test(`${r.stdout}${r.stderr}`));
    availability.set(key, ok);
  }
  return ok;
}

/** swtpm with TPM 2.0 support is installed. */
export function swtpmAvailable(): boolean {
  return runs('swtpm', ['socket', '--tpm2', '--print-capabilities']);
}

/** socat is installed (needed by startPty). */
export function socatAvailable(): boolean {
  return runs('socat', ['-V']);
}

// ---------------------------------------------------------------------------------------------
// process bookkeeping

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

async function makeTempDir(prefix: string): Promise<string> {
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

async function removeDir(dir: string): Promise<void> {
  liveDirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Spawns `cmd` so that it dies with us: SIGKILL on our exit, and PDEATHSIG where available. */
function spawnTracked(cmd: string, args: string[], extraFds = 0): { child: ChildProcess; stderr: () => string } {
  installExitHook();
  const withPdeath = runs('setpriv', ['--help'], /--pdeathsig/);
  const [file, argv] = withPdeath ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'ignore', 'pipe'];
  for (let i = 0; i < extraFds; i++) stdio.push('pipe');
  const child = spawn(file, argv, { stdio });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  child.once('error', () => liveChildren.delete(child));
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    tail = (tail + s).slice(-4096);
  });
  return { child, stderr: () => tail.trim() };
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
async function terminate(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  if ((await Promise.race([gone, late])) === 'late') {
    child.kill('SIGKILL');
    await gone;
  }
  clearTimeout(timer);
}

/** Polls `probe` until it returns true; fails early if `child` exits. */
async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  child: ChildProcess,
  stderr: () => string,
  timeoutMs: number,
): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (exited(child)) {
      throw new Error(`${what}: process exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderr()}`);
    }
    if (await probe()) return;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not ready after ${timeoutMs} ms: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function canConnect(target: { path: string } | { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = createConnection(target);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** AF_UNIX paths are limited to 107 bytes; a long TMPDIR would otherwise fail obscurely. */
function checkSocketPath(p: string): void {
  if (Buffer.byteLength(p) > 107) throw new Error(`unix socket path too long (${p}); set TMPDIR to a shorter directory`);
}

// ---------------------------------------------------------------------------------------------
// swtpm socket

export interface SwtpmOptions {
  /** TPM state directory to use (kept on stop). Default: the fresh temp dir (removed on stop). */
  stateDir?: string;
  /** Value of `--flags` (default `not-need-init,startup-clear`). */
  flags?: string;
  /** Further swtpm arguments. */
  extraArgs?: string[];
  /** How long to wait for swtpm to accept connections (default 15 s). */
  startTimeoutMs?: number;
  /** Serve the TPM on 127.0.0.1:tcpPort instead of the unix socket (sockPath is then unused). */
  tcpPort?: number;
}

export interface SwtpmInstance {
  /** Temp dir holding the sockets (and the state, unless stateDir was given). */
  readonly dir: string;
  /** Unix server socket (unless tcpPort was given). */
  readonly sockPath: string;
  readonly tcpPort: number | undefined;
  readonly ctrlPath: string;
  readonly stateDir: string;
  /** Current swtpm process id (changes on restart). */
  readonly pid: number | undefined;
  /** A new transport to this swtpm; closed by stop(). swtpm serves one connection at a time. */
  transport(opts?: TransportOptions): SwtpmSocketTransport;
  /** Closes the transports, stops swtpm (SIGTERM, then SIGKILL), removes temp dirs. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs swtpm now (simulates a crash); stop() still cleans up, restart() starts it again. */
  kill(): void;
  /**
   * Stops swtpm if running and starts it again on the same state and socket paths. `flags`
   * replaces `--flags` for this and later starts: e.g. `not-need-init,startup-state` resumes
   * after a TPM2_Shutdown(STATE) (a TPM Resume) instead of the default Startup(CLEAR) (a TPM Reset).
   */
  restart(opts?: { flags?: string }): Promise<void>;
}

/**
 * Runs `fn` with the library on its own connection to `sw` (swtpm serves one at a time), closed
 * before the returned promise settles, so stock tools can connect next.
 */
export async function withTpmOn<T>(sw: SwtpmInstance, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
  const transport = sw.transport();
  try {
    return await fn(new Tpm(transport));
  } finally {
    await transport.close();
  }
}

export async function startSwtpm(opts: SwtpmOptions = {}): Promise<SwtpmInstance> {
  const dir = await makeTempDir('swtpm-');
  const sockPath = join(dir, 'swtpm.sock');
  const ctrlPath = join(dir, 'swtpm.ctrl');
  checkSocketPath(ctrlPath);
  const stateDir = opts.stateDir ?? dir;
  const args = [
    'socket',
    '--tpm2',
    '--server',
    opts.tcpPort === undefined ? `type=unixio,path=${sockPath}` : `type=tcp,port=${opts.tcpPort},bindaddr=127.0.0.1`,
    '--ctrl',
    `type=unixio,path=${ctrlPath}`,
    '--tpmstate',
    `dir=${stateDir}`,
    '--flags',
    opts.flags ?? 'not-need-init,startup-clear',
    ...(opts.extraArgs ?? []),
  ];
  const flagsAt = args.indexOf('--flags') + 1;
  const transports = new Set<Transport>();
  let proc: { child: ChildProcess; stderr: () => string } | undefined;
  let stopped = false;

  const launch = async (): Promise<void> => {
    // Stale socket files from a killed instance would make the readiness probe lie.
    await rm(sockPath, { force: true });
    await rm(ctrlPath, { force: true });
    const p = spawnTracked('swtpm', args);
    proc = p;
    const target = opts.tcpPort === undefined ? { path: sockPath } : { host: '127.0.0.1', port: opts.tcpPort };
    await waitUntil('swtpm', () => canConnect(target), p.child, p.stderr, opts.startTimeoutMs ?? 15_000);
  };
  const halt = async (): Promise<void> => {
    if (proc) await terminate(proc.child);
  };

  try {
    await launch();
  } catch (e) {
    await halt().catch(() => {});
    await removeDir(dir);
    throw e;
  }

  return {
    dir,
    sockPath,
    tcpPort: opts.tcpPort,
    ctrlPath,
    stateDir,
    get pid() {
      return proc?.child.pid;
    },
    transport(topts?: TransportOptions) {
      if (stopped) throw new Error('swtpm instance stopped');
      const t = new SwtpmSocketTransport(
        opts.tcpPort === undefined ? { ...topts, path: sockPath } : { ...topts, host: '127.0.0.1', port: opts.tcpPort },
      );
      transports.add(t);
      return t;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([...transports].map((t) => t.close()));
      await halt();
      await removeDir(dir);
    },
    kill() {
      if (proc && !exited(proc.child)) proc.child.kill('SIGKILL');
    },
    async restart(ropts = {}) {
      if (stopped) throw new Error('swtpm instance stopped');
      await halt();
      if (ropts.flags !== undefined) args[flagsAt] = ropts.flags;
      await launch();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// swtpm chardev on fd 3

export interface SwtpmChardevOptions {
  stateDir?: string;
  flags?: string;
  extraArgs?: string[];
  /** Options of the transport returned by transport(). */
  transportOptions?: TransportOptions;
  startTimeoutMs?: number;
}

export interface SwtpmChardevInstance {
  readonly dir: string;
  readonly stateDir: string;
  readonly pid: number | undefined;
  /** The one transport over the socket pair (there is only one stream; it cannot reconnect). */
  transport(): ChardevTransport;
  stop(): Promise<void>;
  kill(): void;
}

/** GetRandom(1): a harmless command to check that the TPM answers. */
const PROBE = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 1]);

export async function startSwtpmChardev(opts: SwtpmChardevOptions = {}): Promise<SwtpmChardevInstance> {
  const dir = await makeTempDir('swtpm-cd-');
  const stateDir = opts.stateDir ?? dir;
  const args = [
    'chardev',
    '--tpm2',
    '--fd',
    '3',
    '--tpmstate',
    `dir=${stateDir}`,
    '--flags',
    opts.flags ?? 'not-need-init,startup-clear',
    ...(opts.extraArgs ?? []),
  ];
  // stdio[3] 'pipe' is a socket pair: fd 3 in the child, a net.Socket here.
  const p = spawnTracked('swtpm', args, 1);
  const stream = p.child.stdio[3] as Socket;
  const transport = new ChardevTransport(stream, { ...opts.transportOptions, description: `swtpm:chardev(pid ${p.child.pid})` });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await transport.close();
    await terminate(p.child);
    await removeDir(dir);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      p.child.once('spawn', () => resolve());
      p.child.once('error', reject);
    });
    await transport.send(PROBE, { timeoutMs: opts.startTimeoutMs ?? 15_000 });
  } catch (e) {
    await stop().catch(() => {});
    throw new Error(`swtpm chardev did not answer: ${(e as Error).message}: ${p.stderr()}`, { cause: e });
  }
  return {
    dir,
    stateDir,
    get pid() {
      return p.child.pid;
    },
    transport: () => transport,
    stop,
    kill() {
      if (!exited(p.child)) p.child.kill('SIGKILL');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// socat PTY in front of a unix socket

export interface PtyInstance {
  /** Symlink to the PTY slave (e.g. DIR/tpmrm0 -> /dev/pts/3). */
  readonly devicePath: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** A new DeviceTransport on the PTY; closed by stop(). */
  transport(opts?: Omit<DeviceTransportOptions, 'path'>): DeviceTransport;
  /** Closes the transports, stops socat, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs socat now: the PTY goes away under any open transport. */
  kill(): void;
}

/**
 * socat `PTY,link=DIR/tpmrm0,rawer` <-> `UNIX-CONNECT:sockPath`: a real character device whose bytes
 * go to and from the unix socket (swtpm's server socket, or any test server).
 */
export async function startPty(sockPath: string, opts: { startTimeoutMs?: number } = {}): Promise<PtyInstance> {
  if (/[,:!\s"'\\]/.test(sockPath)) throw new Error(`socket path not usable in a socat address: ${sockPath}`);
  const dir = await makeTempDir('tpm-pty-');
  const devicePath = join(dir, 'tpmrm0');
  // Socket first: socat opens its addresses in order, so once the link exists the connection
  // is up too (with the PTY first, the link could appear and then socat die on a failed connect).
  const p = spawnTracked('socat', [`UNIX-CONNECT:${sockPath}`, `PTY,link=${devicePath},rawer`]);
  const transports = new Set<Transport>();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([...transports].map((t) => t.close()));
    await terminate(p.child);
    await removeDir(dir);
  };
  try {
    await waitUntil('socat', () => exists(devicePath), p.child, p.stderr, opts.startTimeoutMs ?? 10_000);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return {
    devicePath,
    dir,
    get pid() {
      return p.child.pid;
    },
    transport(topts = {}) {
      if (stopped) throw new Error('PTY stopped');
      const t = new DeviceTransport({ ...topts, path: devicePath });
      transports.add(t);
      return t;
    },
    stop,
    kill() {
      if (!exited(p.child)) p.child.kill('SIGKILL');
    },
  };
}
