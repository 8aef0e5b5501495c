/**
 * Everything the benchmark starts is registered here and undone on the way out: after each
 * group, on failure, on Ctrl-C / SIGTERM, and (synchronously, SIGKILL) on process exit.
 * Children are also started with a parent-death signal (setpriv --pdeathsig) where available,
 * so a SIGKILLed benchmark leaves nothing running.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Disposer = () => Promise<void> | void;

const disposers: Disposer[] = [];
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;
let interrupted = false;

export function isInterrupted(): boolean {
  return interrupted;
}

/** Registers an async undo step; returns a function that runs it now (and only once). */
export function onCleanup(fn: Disposer): () => Promise<void> {
  let done = false;
  const once: Disposer = async () => {
    if (done) return;
    done = true;
    const i = disposers.indexOf(once);
    if (i >= 0) disposers.splice(i, 1);
    await fn();
  };
  disposers.push(once);
  return async () => once();
}

/** Runs every registered undo step, newest first. Concurrent callers share one run. */
let running: Promise<void> | undefined;
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (disposers.length > 0) {
      const d = disposers[disposers.length - 1]!;
      try {
        await d();
      } catch (e) {
        process.stderr.write(`[bench] cleanup step failed: ${(e as Error).message}\n`);
      }
      // d removes itself; guard against one that did not
      if (disposers[disposers.length - 1] === d) disposers.pop();
    }
  })().finally(() => {
    running = undefined;
  });
  return running;
}

export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n[bench] ${sig}: stopping everything the benchmark started…\n`);
    const hard = setTimeout(() => process.exit(sig === 'SIGINT' ? 130 : 143), 15_000);
    hard.unref();
    void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.once('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

let pdeath: boolean | undefined;
function hasPdeathsig(): boolean {
  if (pdeath === undefined) {
    const r = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    pdeath = r.status === 0 && /--pdeathsig/.test(`${r.stdout}${r.stderr}`);
  }
  return pdeath;
}

export interface Tracked {
  child: ChildProcess;
  /** Last 16 KiB of stdout+stderr. */
  output(): string;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Spawns a long-running helper (swtpm, the service) that dies with us. The returned pid is
 * the program's own: setpriv execs it in place.
 */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Tracked {
  installSignalHandlers();
  const [file, argv] = hasPdeathsig() ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  let tail = '';
  const keep = (b: Buffer): void => {
    tail = (tail + b.toString('utf8')).slice(-16_384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  const stop = async (graceMs = 5000): Promise<void> => {
    if (exited()) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  };
  return { child, output: () => tail.trim(), exited, stop };
}

/** A fresh temp dir (short path: unix socket paths are limited to 107 bytes), removed on exit. */
export async function tempDir(prefix: string): Promise<string> {
  installSignalHandlers();
  const base = process.env.BENCH_TMPDIR ?? (tmpdir().length > 40 ? '/tmp' : tmpdir());
  const d = await mkdtemp(join(base, prefix));
  dirs.add(d);
  onCleanup(async () => {
    await rm(d, { recursive: true, force: true });
    dirs.delete(d);
  });
  return d;
}

/** Polls `probe` until true; fails early if `t` exits. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, t: Tracked | undefined, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (t?.exited()) throw new Error(`${what} exited (${t.child.exitCode ?? t.child.signalCode}) before it was ready: ${t.output()}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not ready after ${timeoutMs} ms${t ? `: ${t.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
