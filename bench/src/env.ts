/**
 * The benchmark's fixtures: swtpm instances (one, or a pair with the same seeds), the TPM
 * service as a child process of the built bin, its tenants, and /proc memory readings.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { startSwtpm, type SwtpmInstance } from '../../test/helpers/swtpm.js';
import { ServiceClient } from '../../src/service/client/client.js';
import { TPM_RH, Tpm, createTransientEk, flush, makePersistent, readPublic, type Transport } from '../../src/tpm/index.js';
import type { Ctx } from './context.js';
import { onCleanup, spawnTracked, tempDir, waitUntil, type Tracked } from './lifecycle.js';

/** Where EVE keeps its EK; the service (and the library) find it there. */
export const EVE_EK_HANDLE = 0x81000001;

export function distBin(ctx: Ctx, name: string): string {
  const p = join(ctx.root, 'dist', 'bin', `${name}.cjs`);
  if (!existsSync(p)) throw new Error(`${p} is missing${ctx.buildError ? ` (${ctx.buildError})` : ''}: run npx tsup`);
  return p;
}

export interface Swtpm {
  inst: SwtpmInstance;
  sockPath: string;
  stateDir: string;
  /** Spec for the service's --tpm. */
  spec: string;
  /** A Tpm on a new connection (swtpm serves one connection at a time: close it before another). */
  open(): { tpm: Tpm; transport: Transport };
  pid(): number;
}

async function launch(stateDir: string): Promise<Swtpm> {
  const inst = await startSwtpm({ stateDir });
  onCleanup(() => inst.stop());
  return {
    inst,
    sockPath: inst.sockPath,
    stateDir,
    spec: `swtpm:unix:${inst.sockPath}`,
    open() {
      const transport = inst.transport();
      return { tpm: new Tpm(transport), transport };
    },
    pid: () => inst.pid!,
  };
}

/** Persists the RSA EK at EVE's handle, as on a real EVE device. */
async function persistEk(sw: Swtpm): Promise<void> {
  const { tpm, transport } = sw.open();
  try {
    const present = await readPublic(tpm, EVE_EK_HANDLE).then(
      () => true,
      () => false,
    );
    if (!present) {
      const ek = await createTransientEk(tpm, 'rsa');
      await makePersistent(tpm, ek.handle, EVE_EK_HANDLE);
      await flush(tpm, ek.handle);
    }
  } finally {
    await transport.close();
  }
}

/**
 * `count` swtpm instances with the same seeds and the same persisted EK (one state, copied
 * while swtpm is stopped): keys wrapped by one load in all of them, so the service and the
 * direct library path can do exactly the same operation on twin TPMs.
 */
export async function startTwinSwtpms(count: number): Promise<Swtpm[]> {
  const base = await tempDir('bench-tpm-');
  const first = join(base, 's0');
  mkdirSync(first);
  const seed = await launch(first);
  await persistEk(seed);
  await seed.inst.stop(); // writes its state; the copies start from it
  const out: Swtpm[] = [];
  for (let i = 0; i < count; i++) {
    const dir = join(base, `t${i}`);
    cpSync(first, dir, { recursive: true });
    out.push(await launch(dir));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the service

export interface ServiceOptions {
  tpm: string;
  keyStore?: 'blobs' | 'tpm';
  tenants: number;
  maxKeys?: number;
  logLevel?: string;
  extraArgs?: string[];
  /** Extra node options for the service process (e.g. --cpu-prof when investigating). */
  nodeArgs?: string[];
}

export interface Service {
  sock: string;
  address: string;
  stateDir: string;
  secrets: string[];
  proc: Tracked;
  logFile: string;
  pid(): number;
  client(tenant: number, timeoutMs?: number): ServiceClient;
  stop(): Promise<void>;
  /**
   * Starts the service again (same state, tenants, socket), e.g. on another TPM spec; `extraArgs`
   * given replaces the options' extra arguments from then on.
   */
  restart(tpm?: string, extraArgs?: string[]): Promise<void>;
}

function healthy(socketPath: string): Promise<boolean> {
  return new Promise((res) => {
    const req = request({ socketPath, path: '/v1/health', method: 'GET', timeout: 2000 }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res(r.statusCode === 200 && /"reachable":\s*true/.test(body)));
    });
    req.once('error', () => res(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

function addTenant(service: string, tenantsFile: string, id: string, maxKeys: number): string {
  const r = spawnSync(process.execPath, [service, 'tenant', 'add', '--id', id, '--tenants', tenantsFile, '--max-keys', String(maxKeys)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`eve-tpm-service tenant add failed (${r.status}): ${r.stderr}${r.stdout}`);
  const m = /Secret[^\n]*:\s*\n\s*(\S+)/.exec(r.stdout);
  if (!m) throw new Error(`tenant add printed no secret: ${r.stdout}`);
  return m[1]!;
}

/** Starts `eve-tpm-service serve` (the built, bundled bin) on a unix socket with N tenants. */
export async function startService(ctx: Ctx, o: ServiceOptions): Promise<Service> {
  const bin = distBin(ctx, 'eve-tpm-service');
  const dir = await tempDir('bench-svc-');
  const tenantsFile = join(dir, 'tenants.json');
  const stateDir = join(dir, 'state');
  const sock = join(dir, 'svc.sock');
  const logFile = join(dir, 'service.log');
  const secrets: string[] = [];
  for (let i = 0; i < o.tenants; i++) secrets.push(addTenant(bin, tenantsFile, `bench-t${i}`, o.maxKeys ?? 1000));
  let proc!: Tracked;
  let tpmSpec = o.tpm;
  let extraArgs = o.extraArgs ?? [];
  const start = async (): Promise<void> => {
    // The service logs one JSON line per request (pino, info by default, as in production)
    // into a file: piping it to this process would charge its logging to the benchmark.
    const fd = openSync(logFile, 'a');
    try {
      proc = spawnTracked(
        process.execPath,
        [
          ...(o.nodeArgs ?? []),
          bin,
          'serve',
          '--tpm',
          tpmSpec,
          '--listen',
          `unix:${sock}`,
          '--state-dir',
          stateDir,
          '--tenants',
          tenantsFile,
          '--key-store',
          o.keyStore ?? 'blobs',
          '--log-level',
          o.logLevel ?? 'info',
          ...extraArgs,
        ],
        { stdio: ['ignore', fd, fd] },
      );
    } finally {
      closeSync(fd);
    }
    const logTail = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-4000) : '');
    try {
      await waitUntil('eve-tpm-service', () => healthy(sock), proc, 30_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${logTail()}`);
    }
  };
  await start();
  const service: Service = {
    sock,
    address: `unix:${sock}`,
    stateDir,
    secrets,
    get proc() {
      return proc;
    },
    logFile,
    pid: () => proc.child.pid!,
    client: (tenant, timeoutMs = 600_000) => new ServiceClient({ address: `unix:${sock}`, secret: secrets[tenant]!, timeoutMs }),
    stop: () => proc.stop(10_000),
    async restart(tpm?: string, args?: string[]) {
      await proc.stop(10_000);
      if (tpm) tpmSpec = tpm;
      if (args) extraArgs = args;
      await start();
    },
  };
  onCleanup(() => proc.stop(10_000));
  return service;
}

/** The service's key blobs as stored in its state directory (blobs key store). */
export function serviceKeyBlobs(svc: Service, handle: string): { public: Uint8Array; private: Uint8Array } {
  const j = JSON.parse(readFileSync(join(svc.stateDir, 'keys', `${handle}.json`), 'utf8')) as { public: string; private: string };
  return { public: new Uint8Array(Buffer.from(j.public, 'base64')), private: new Uint8Array(Buffer.from(j.private, 'base64')) };
}

// ---------------------------------------------------------------------------------------------
// memory

export interface MemStatus {
  /** Resident set now, KiB. */
  rssKiB: number;
  /** Peak resident set since the process started, KiB. */
  hwmKiB: number;
}

export function memStatus(pid: number): MemStatus | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN);
    return { rssKiB: get('VmRSS'), hwmKiB: get('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Samples a process's memory every `everyMs` until stopped. */
export function sampleMemory(pid: number, everyMs = 100): { stop(): { samples: MemStatus[]; peakRssKiB: number; hwmKiB: number } } {
  const samples: MemStatus[] = [];
  const tick = (): void => {
    const m = memStatus(pid);
    if (m) samples.push(m);
  };
  tick();
  const t = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(t);
      tick();
      const peakRssKiB = Math.max(...samples.map((s) => s.rssKiB));
      const hwmKiB = samples.at(-1)?.hwmKiB ?? Number.NaN;
      return { samples, peakRssKiB, hwmKiB };
    },
  };
}

