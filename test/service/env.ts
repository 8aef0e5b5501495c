/**
 * Test environment for the service: a fresh swtpm, a tenants file, a state dir, and the
 * service itself in this process (unix + loopback tcp listeners), with a Tpm that records
 * every command so tests can prove that refused requests never reached the TPM, and the log
 * captured as parsed JSON lines.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Tpm, type TpmRunner } from '../../src/tpm/index.js';
import { resolveConfig, type ServiceConfig } from '../../src/service/config.js';
import { createLogger } from '../../src/service/logger.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { ServiceClient, ServiceError } from '../../src/service/client/client.js';
import { generateSecret, hashSecret } from '../../src/service/tenants/tenants.js';
import { startSwtpm, type SwtpmInstance } from '../helpers/swtpm.js';
import { loadedHandles } from '../helpers/hygiene.js';

export interface TenantSpec {
  id: string;
  cid?: number;
  maxKeys?: number;
  /** false: a tenant without secret (CID only). */
  secret?: boolean;
}

export interface LogLine {
  event?: string;
  [k: string]: unknown;
}

export interface TestEnv {
  swtpm: SwtpmInstance;
  tpm: Tpm;
  /** Names of the TPM commands sent, in order. */
  commands: string[];
  service: RunningService;
  dir: string;
  stateDir: string;
  tenantsFile: string;
  secrets: Record<string, string>;
  unix: string;
  tcp: string;
  logs: LogLine[];
  config: ServiceConfig;
  client(tenant: string, via?: 'unix' | 'tcp'): ServiceClient;
  /** Stops the service (keeps swtpm and state). */
  stopService(): Promise<void>;
  /** Starts the service again on the same swtpm and state. */
  restartService(overrides?: Partial<ServiceConfig>): Promise<void>;
  /** Runs `fn` on the TPM as a queue job (quiescent: nothing else runs meanwhile). */
  onTpm<T>(fn: (tpm: TpmRunner) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

export async function startEnv(opts: { tenants?: TenantSpec[]; config?: Partial<ServiceConfig> } = {}): Promise<TestEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'svc-'));
  const swtpm = await startSwtpm();
  const commands: string[] = [];
  const tpm = new Tpm(swtpm.transport(), { onExchange: (e) => commands.push(e.command) });
  const secrets: Record<string, string> = {};
  const tenants = (opts.tenants ?? [{ id: 'alice' }, { id: 'bob' }]).map((t) => {
    const out: Record<string, unknown> = { id: t.id, maxKeys: t.maxKeys ?? 8 };
    if (t.cid !== undefined) out.cid = t.cid;
    if (t.secret !== false) {
      secrets[t.id] = generateSecret();
      out.secretHash = hashSecret(secrets[t.id]!);
    }
    return out;
  });
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(tenantsFile, JSON.stringify({ tenants }), { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  let config = resolveConfig(
    {},
    {
      tpm: `swtpm:unix:${swtpm.sockPath}`,
      listen: [`unix:${join(dir, 'svc.sock')}`, 'tcp:127.0.0.1:0'],
      tenants: tenantsFile,
      stateDir,
      logLevel: 'info',
      ...opts.config,
    },
  );
  let service = await startService(config, { tpm, logger: createLogger('info', sink) });
  const env: TestEnv = {
    swtpm,
    tpm,
    commands,
    get service() {
      return service;
    },
    dir,
    stateDir,
    tenantsFile,
    secrets,
    unix: service.addresses.find((a) => a.startsWith('unix:'))!,
    get tcp() {
      return service.addresses.find((a) => a.startsWith('tcp:'))!;
    },
    logs,
    get config() {
      return config;
    },
    client(tenant, via = 'unix') {
      return new ServiceClient({ address: via === 'unix' ? env.unix : env.tcp, secret: secrets[tenant], timeoutMs: 30_000 });
    },
    async stopService() {
      await service.close();
    },
    async restartService(overrides = {}) {
      await service.close();
      config = resolveConfig({}, { ...config, ...overrides });
      service = await startService(config, { tpm, logger: createLogger('info', sink) });
    },
    onTpm(fn) {
      return service.core.queue.submit('#test', 'test', fn);
    },
    async stop() {
      await service.close().catch(() => {});
      await swtpm.stop();
      await rm(dir, { recursive: true, force: true });
    },
  } as TestEnv;
  return env;
}

/** Waits until `probe` holds (polling), or fails after `ms`. */
export async function eventually(probe: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Audit lines since index `from`. */
export function auditSince(env: TestEnv, from: number): LogLine[] {
  return env.logs.slice(from).filter((l) => l.event === 'audit');
}

export const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The ServiceError a request fails with (anything else, or success, fails the test). */
export async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ServiceError) return e;
    throw e;
  }
  throw new Error('expected the request to fail');
}

/**
 * What is loaded in the TPM besides the keys the object cache keeps (those are accounted for,
 * not leaks: the cache holds at most its slots and flushes them on delete, purge and stop).
 * Read as one queue job, so the cache and the TPM are seen at the same moment.
 */
export function leftLoaded(env: Pick<TestEnv, 'onTpm' | 'service'>): Promise<{ transient: number[]; sessions: number[] }> {
  return env.onTpm(async (tpm) => {
    const h = await loadedHandles(tpm);
    const cached = new Set(env.service.core.objectCache.transientHandles());
    return { transient: h.transient.filter((x) => !cached.has(x)), sessions: h.sessions };
  });
}
