/**
 * End-to-end harness for the container tools: the bundled executables, a fresh swtpm, the
 * service as a child process with real tenants (added through `eve-tpm-service tenant add`),
 * and a way to run a tool as a child process and collect its exit code and output.
 *
 * The executables are taken from dist/bin when that build is newer than every source file,
 * else built with the project's tsup settings into a private folder. Either way they are
 * copied into the suite's own folder first: dist/ may be cleaned and rebuilt by someone else
 * (tsup's `clean`) while the suite runs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { REPO_ROOT } from '../helpers/shared.js';
import { startSwtpm, type SwtpmInstance } from '../helpers/swtpm.js';
import { TOOL_NAMES, toolCommand } from '../../src/service/protocol/tools.js';

export const TOOLS = TOOL_NAMES.map(toolCommand);
export type ToolName = (typeof TOOLS)[number];
const EXECUTABLES = [...TOOLS, 'eve-tpm-service'];
const DIST_BIN = join(REPO_ROOT, 'dist/bin');

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** What is missing to run the end-to-end tests here (CI installs it; see the report). */
export function missingPrerequisites(): string[] {
  return ['swtpm', 'openssl'].filter((c) => !has(c));
}

function newestSource(): number {
  let newest = 0;
  const walk = (p: string): void => {
    const st = statSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['src', 'package.json', 'tsup.config.ts']) if (existsSync(join(REPO_ROOT, p))) walk(join(REPO_ROOT, p));
  return newest;
}

function distIsFresh(): boolean {
  const files = EXECUTABLES.map((e) => join(DIST_BIN, `${e}.cjs`));
  if (!files.every((f) => existsSync(f))) return false;
  return Math.min(...files.map((f) => statSync(f).mtimeMs)) >= newestSource();
}

/** The executables in `dir/bin/NAME.cjs`, fresh; returns how they were obtained. */
export async function prepareExecutables(dir: string): Promise<'dist' | 'built'> {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  if (distIsFresh()) {
    for (const e of EXECUTABLES) copyFileSync(join(DIST_BIN, `${e}.cjs`), join(bin, `${e}.cjs`));
    return 'dist';
  }
  const { build } = await import('tsup');
  const configs = (await import('../../tsup.config.js')).default as unknown;
  const list = (Array.isArray(configs) ? configs : [configs]) as Record<string, unknown>[];
  const binConfig = list.find((c) => typeof c.entry === 'object' && c.entry !== null && Object.keys(c.entry).some((k) => k.startsWith('bin/')));
  if (!binConfig) throw new Error('tsup.config.ts has no executables entry');
  await build({
    ...binConfig,
    entry: Object.fromEntries(EXECUTABLES.map((e) => [`bin/${e}`, join(REPO_ROOT, `src/bin/${e}.ts`)])),
    outDir: dir,
    clean: false,
    dts: false,
    sourcemap: false,
    silent: true,
    config: false,
  });
  for (const e of EXECUTABLES) if (!existsSync(join(bin, `${e}.cjs`))) throw new Error(`build produced no ${e}.cjs`);
  return 'built';
}

// ---------------------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Piped to stdin (a Buffer, a string, or a stream such as fs.createReadStream). */
  input?: Buffer | string | Readable;
  timeoutMs?: number;
  /** Extra node arguments before the script (e.g. `-r hook.cjs`). */
  nodeArgs?: string[];
  /** Called once the child has started. */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs `node FILE ARGS` and resolves when it exits. */
export function runNode(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), file, ...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {}); // the tool may exit before reading it all
      if (typeof opts.input === 'string' || Buffer.isBuffer(opts.input)) child.stdin!.end(opts.input);
      else opts.input.pipe(child.stdin!);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: Date.now() - t0 });
    });
    opts.onSpawn?.(child);
  });
}

// ---------------------------------------------------------------------------------------------

export interface TenantSpec {
  id: string;
  maxKeys?: number;
}

export interface Stack {
  dir: string;
  bin: string;
  swtpm: SwtpmInstance;
  socket: string;
  address: string;
  secrets: Record<string, string>;
  /** Environment for a tool run as `tenant`: EVE_TOOLS_SERVICE, EVE_TOOLS_SECRET, no config file. */
  env(tenant: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  tool(name: ToolName): string;
  /** Runs a tool as `tenant` (in `dir/work` unless cwd is given). */
  run(name: ToolName, args: string[], tenant?: string, opts?: RunOptions): Promise<RunResult>;
  serviceLog(): string;
  stop(): Promise<void>;
}

function healthy(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/v1/health', timeout: 2000 }, (r) => {
      r.resume();
      resolve(r.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/** A base environment without any EVE_TOOLS_* from the developer's shell. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('EVE_TOOLS_')) env[k] = v;
  return { ...env, ...extra };
}

export interface StackOptions {
  /** Runs on the fresh swtpm before the service connects to it (swtpm serves one connection at a time). */
  beforeService?: (swtpm: SwtpmInstance) => Promise<void>;
}

export async function startStack(tenants: TenantSpec[], opts: StackOptions = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'cli-e2e-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  const stopAll = async (): Promise<void> => {
    for (const f of cleanups.reverse()) await f();
  };
  try {
    await prepareExecutables(dir);
    const bin = join(dir, 'bin');
    const service = join(bin, 'eve-tpm-service.cjs');
    const swtpm = await startSwtpm();
    cleanups.push(() => swtpm.stop());
    await opts.beforeService?.(swtpm);
    const tenantsFile = join(dir, 'tenants.json');
    const secrets: Record<string, string> = {};
    for (const t of tenants) {
      const args = [service, 'tenant', 'add', '--id', t.id, '--tenants', tenantsFile];
      if (t.maxKeys !== undefined) args.push('--max-keys', String(t.maxKeys));
      const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tenant add ${t.id}: ${r.stderr}`);
      const lines = r.stdout.split('\n');
      const secret = lines[lines.findIndex((l) => /^Secret\b/.test(l)) + 1]?.trim();
      if (!secret) throw new Error(`tenant add ${t.id} printed no secret: ${r.stdout}`);
      secrets[t.id] = secret;
    }
    const socket = join(dir, 'svc.sock');
    const child = spawn(
      process.execPath,
      [service, 'serve', '--tpm', `swtpm:unix:${swtpm.sockPath}`, '--listen', `unix:${socket}`, '--state-dir', join(dir, 'state'), '--tenants', tenantsFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    live.add(child);
    let log = '';
    const keep = (c: Buffer): void => {
      log = (log + c.toString()).slice(-65_536);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      live.delete(child);
    });
    const t0 = Date.now();
    while (!(await healthy(socket))) {
      if (child.exitCode !== null) throw new Error(`service exited (${child.exitCode}): ${log}`);
      if (Date.now() - t0 > 20_000) throw new Error(`service not healthy after 20 s: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const work = join(dir, 'work');
    mkdirSync(work);
    const address = `unix:${socket}`;
    const stack: Stack = {
      dir,
      bin,
      swtpm,
      socket,
      address,
      secrets,
      env: (tenant, extra = {}) =>
        cleanEnv({
          EVE_TOOLS_SERVICE: address,
          EVE_TOOLS_SECRET: secrets[tenant],
          // No config file unless a test writes one: the machine's /etc stays out of it.
          EVE_TOOLS_CONFIG: 'none',
          ...extra,
        }),
      tool: (name) => join(bin, `${name}.cjs`),
      run: (name, args, tenant = tenants[0]!.id, opts = {}) =>
        runNode(join(bin, `${name}.cjs`), args, { cwd: work, ...opts, env: opts.env ?? stack.env(tenant) }),
      serviceLog: () => log,
      stop: stopAll,
    };
    writeFileSync(join(work, 'message.txt'), 'Hello from an EVE edge container.\n');
    return stack;
  } catch (e) {
    await stopAll();
    throw e;
  }
}
