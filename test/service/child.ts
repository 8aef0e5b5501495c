/**
 * The service as a real child process: built once per suite with esbuild (the bundler tsup
 * uses, same options as tsup.config.ts's bin entry) into a temp dir — not dist/, which other
 * suites and builds may be using — and run with `node`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceClient } from '../../src/service/client/client.js';
import { parseRegistry, type KeyEntry } from '../../src/service/keys/registry.js';
import { REPO_ROOT } from '../helpers/shared.js';

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Bundles src/bin/eve-tpm-service.ts into one CommonJS file; returns its path. */
export function buildServiceBin(): { bin: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'svc-bin-'));
  dirs.add(dir);
  const bin = join(dir, 'eve-tpm-service.cjs');
  const r = spawnSync(
    join(REPO_ROOT, 'node_modules/.bin/esbuild'),
    [
      'src/bin/eve-tpm-service.ts',
      '--bundle',
      '--platform=node',
      '--target=node20',
      '--format=cjs',
      `--outfile=${bin}`,
      '--external:node-vsock-linux-x64-gnu',
      '--log-level=error',
    ],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`esbuild failed: ${r.stderr}`);
  return {
    bin,
    cleanup: () => {
      dirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ServiceProcess {
  child: ChildProcess;
  /** Last 8 KiB of stderr (the JSON log). */
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** util-linux setpriv can give the child a parent-death signal: it dies even if we are SIGKILLed. */
const withPdeath = spawnSync('setpriv', ['--help'], { encoding: 'utf8' }).stdout?.includes('--pdeathsig') ?? false;

export function spawnService(bin: string, args: string[], env: Record<string, string> = {}): ServiceProcess {
  const argv = [process.execPath, bin, ...args];
  const [file, rest] = withPdeath ? ['setpriv', ['--pdeathsig', 'KILL', '--', ...argv]] : [argv[0]!, argv.slice(1)];
  // setpriv execs node in place: the pid and the signals are node's.
  const child = spawn(file, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  live.add(child);
  let tail = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (tail = (tail + s).slice(-8192)));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, stderr: () => tail, exited };
}

/** SIGKILLs every service process still running (suite teardown). */
export async function killAll(): Promise<void> {
  const waits = [...live].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(undefined) : c.once('exit', r))));
  for (const c of live) c.kill('SIGKILL');
  await Promise.all(waits);
}

/** Runs the bin to completion (admin commands). */
export function runBin(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Polls /v1/health until `status` is ok (TPM reachable, recovery done). */
export async function waitHealthy(p: ServiceProcess, address: string, ms = 20_000): Promise<void> {
  const c = new ServiceClient({ address, timeoutMs: 2000 });
  const until = Date.now() + ms;
  let exitedEarly = false;
  void p.exited.then(() => (exitedEarly = true));
  while (Date.now() < until) {
    if (exitedEarly) throw new Error(`the service exited before it was healthy: ${p.stderr()}`);
    try {
      if ((await c.health()).status === 'ok') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the service was not healthy within ${ms} ms: ${p.stderr()}`);
}

/** The registry file of a state dir as it is on disk (absent: no entries). */
export function readRegistryFile(stateDir: string): KeyEntry[] {
  try {
    return parseRegistry(readFileSync(join(stateDir, 'registry.json'), 'utf8'));
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return [];
    throw e;
  }
}
