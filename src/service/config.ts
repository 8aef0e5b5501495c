/**
 * The service's configuration: defaults, a JSON file with the same keys as the flags
 * (`--config`), and flags on top. Validated once at start-up; a bad value stops the start with
 * a message naming the key.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { DEFAULT_VSOCK_PORT, formatAddress, parseAddress, type ListenAddress } from './protocol/address.js';
import { DEFAULT_POOL_SIZE, DEFAULT_POOL_START, HandlePool } from './keys/pool.js';
import type { KeyStoreKind } from './keys/registry.js';
import { DEFAULT_MAX_KEYS } from './tenants/tenants.js';

export interface ServiceConfig {
  /** TPM: a device path (default /dev/tpmrm0), swtpm:unix:PATH or swtpm:tcp:HOST:PORT. */
  tpm: string;
  listen: string[];
  /** Tenants file (JSON). Required unless singleTenant. */
  tenants?: string;
  stateDir: string;
  poolStart: number;
  poolSize: number;
  keyStore: KeyStoreKind;
  /** tpm key store: persistent slots kept free for EVE. */
  tpmFreeFloor: number;
  /** The device's attestation key (EVE's AIK): the signer of device-certify. A persistent handle. */
  deviceAk: number;
  logLevel: string;
  /** Development only: no identity, every caller is tenant "default". */
  singleTenant: boolean;
  /** Allow tcp listeners on non-loopback addresses (the secret crosses the network in clear). */
  allowNonLoopback: boolean;
  /** Key quota of tenants that do not set maxKeys (and of the single tenant). */
  defaultMaxKeys: number;
  /** Deadline of a request (waiting for the TPM included). */
  deadlineMs: number;
  /** Deadline of a streamed sign (its body may be large). */
  streamDeadlineMs: number;
  /** Time allowed for a request's complete header block. */
  headersTimeoutMs: number;
  /** Longest pause between two pieces of a request body. */
  bodyTimeoutMs: number;
  /** After `bodyRateGraceMs`, a request body must keep at least this rate (bytes/s); 0 = no minimum. */
  minBodyBytesPerSec: number;
  /** Time a body may take before the minimum rate applies (and the window it is measured over). */
  bodyRateGraceMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  /** Connections one peer (vsock CID, tcp address; unix: all callers together) may hold. */
  maxConnectionsPerPeer: number;
  /**
   * Connections kept for callers that have authenticated: unauthenticated ones get at most
   * maxConnections − this (the reserve is never more than half of maxConnections).
   */
  reservedTenantConnections: number;
  queueCapacity: number;
  queuePerTenant: number;
  /** Hash sequences loaded in the TPM at once (each takes one TPM object slot; swtpm has 3); more are context-saved. */
  hashSlots: number;
  /** Keys the object cache keeps loaded or context-saved between uses; 0 = load and flush on every use. */
  objectCache: number;
  /** Streamed hash sequences open at once (loaded or context-saved). */
  maxSequences: number;
  /** Streamed hash sequences one tenant may have open at once. */
  sequencesPerTenant: number;
  maxJsonBytes: number;
  maxInlineMessageBytes: number;
  /** Largest streamed message; 0 = no limit but the stream deadline. */
  maxStreamBytes: number;
  /** Memory all JSON bodies being read may take together. */
  jsonMemoryBudget: number;
  drainTimeoutMs: number;
  /** Deadline of one TPM command (RSA primary generation is slow on real chips). */
  tpmCommandTimeoutMs: number;
  /** The raw TPM channel (GET /v1/tpm upgraded; src/service/raw): false refuses the upgrade. */
  rawChannel: boolean;
}

export const DEFAULT_CONFIG: ServiceConfig = {
  tpm: '/dev/tpmrm0',
  listen: [`vsock:${DEFAULT_VSOCK_PORT}`],
  stateDir: '/var/lib/eve-tpm-service',
  poolStart: DEFAULT_POOL_START,
  poolSize: DEFAULT_POOL_SIZE,
  keyStore: 'blobs',
  tpmFreeFloor: 2,
  deviceAk: 0x81000003,
  logLevel: 'info',
  singleTenant: false,
  allowNonLoopback: false,
  defaultMaxKeys: DEFAULT_MAX_KEYS,
  deadlineMs: 30_000,
  streamDeadlineMs: 600_000,
  headersTimeoutMs: 5_000,
  bodyTimeoutMs: 10_000,
  minBodyBytesPerSec: 1024,
  bodyRateGraceMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 256,
  maxConnectionsPerPeer: 32,
  reservedTenantConnections: 64,
  queueCapacity: 256,
  queuePerTenant: 64,
  hashSlots: 1,
  objectCache: 32,
  maxSequences: 32,
  sequencesPerTenant: 4,
  maxJsonBytes: 1_500_000,
  maxInlineMessageBytes: 1024 * 1024,
  maxStreamBytes: 0,
  jsonMemoryBudget: 32 * 1024 * 1024,
  drainTimeoutMs: 30_000,
  tpmCommandTimeoutMs: 120_000,
  rawChannel: true,
};

const NUMBER_KEYS = [
  'poolStart',
  'poolSize',
  'tpmFreeFloor',
  'deviceAk',
  'defaultMaxKeys',
  'deadlineMs',
  'streamDeadlineMs',
  'headersTimeoutMs',
  'bodyTimeoutMs',
  'minBodyBytesPerSec',
  'bodyRateGraceMs',
  'keepAliveTimeoutMs',
  'maxConnections',
  'maxConnectionsPerPeer',
  'reservedTenantConnections',
  'queueCapacity',
  'queuePerTenant',
  'hashSlots',
  'objectCache',
  'maxSequences',
  'sequencesPerTenant',
  'maxJsonBytes',
  'maxInlineMessageBytes',
  'maxStreamBytes',
  'jsonMemoryBudget',
  'drainTimeoutMs',
  'tpmCommandTimeoutMs',
] as const satisfies readonly (keyof ServiceConfig)[];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** A number from JSON or a flag: decimal or 0x-hex, integer, ≥ 0. */
export function configNumber(v: unknown, key: string): number {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^0x[0-9a-fA-F]{1,8}$/.test(v)) n = Number.parseInt(v.slice(2), 16);
  else if (typeof v === 'string' && /^[0-9]{1,15}$/.test(v)) n = Number(v);
  if (n === undefined || !Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${key} must be a non-negative integer (decimal or 0x-hex), got ${JSON.stringify(v)}`);
  return n;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  return isIPv6(host) && (host === '::1' || host === '0:0:0:0:0:0:0:1');
}

/** Merges defaults ← file ← flags and validates the result. */
export function resolveConfig(file: Record<string, unknown> = {}, flags: Partial<Record<keyof ServiceConfig, unknown>> = {}): ServiceConfig {
  const known = new Set(Object.keys(DEFAULT_CONFIG).concat('tenants'));
  for (const k of Object.keys(file)) if (!known.has(k)) throw new ConfigError(`unknown configuration key ${JSON.stringify(k)}`);
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const src of [file, flags]) {
    for (const [k, v] of Object.entries(src)) if (v !== undefined) merged[k] = v;
  }
  const c = merged as unknown as ServiceConfig;
  for (const k of NUMBER_KEYS) (c as unknown as Record<string, number>)[k] = configNumber(merged[k], k);
  for (const k of ['singleTenant', 'allowNonLoopback', 'rawChannel'] as const) {
    if (typeof c[k] !== 'boolean') throw new ConfigError(`${k} must be true or false`);
  }
  for (const k of ['tpm', 'stateDir', 'logLevel'] as const) {
    if (typeof c[k] !== 'string' || c[k] === '') throw new ConfigError(`${k} must be a non-empty string`);
  }
  if (c.tenants !== undefined && (typeof c.tenants !== 'string' || c.tenants === '')) throw new ConfigError('tenants must be a file path');
  if (c.keyStore !== 'blobs' && c.keyStore !== 'tpm') throw new ConfigError(`keyStore must be "blobs" or "tpm", got ${JSON.stringify(c.keyStore)}`);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(c.logLevel)) throw new ConfigError(`unknown logLevel ${c.logLevel}`);
  if (!Array.isArray(c.listen) || c.listen.length === 0 || !c.listen.every((l) => typeof l === 'string')) {
    throw new ConfigError('listen must be a non-empty list of addresses');
  }
  c.listen = c.listen.map((l) => formatAddress(listenAddress(l, c.allowNonLoopback)));
  for (const k of ['deadlineMs', 'streamDeadlineMs', 'headersTimeoutMs', 'bodyTimeoutMs', 'maxConnections', 'queueCapacity', 'queuePerTenant', 'hashSlots', 'tpmCommandTimeoutMs', 'bodyRateGraceMs', 'maxConnectionsPerPeer', 'maxSequences', 'sequencesPerTenant'] as const) {
    if (c[k] < 1) throw new ConfigError(`${k} must be at least 1`);
  }

  if (c.deviceAk < 0x81000000 || c.deviceAk > 0x81ffffff) throw new ConfigError(`deviceAk must be a persistent handle (0x81xxxxxx), got 0x${c.deviceAk.toString(16)}`);
  try {
    new HandlePool(c.poolStart, c.poolSize);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (!c.singleTenant && c.tenants === undefined) throw new ConfigError('a tenants file (--tenants) is required unless --single-tenant is given');
  return c;
}

/**
 * One `listen` entry. `fd:N` and `systemd` are inherited sockets: what they are is only known
 * when the service opens them (a non-loopback tcp one is refused there, as here).
 */
export function listenAddress(spec: string, allowNonLoopback: boolean): ListenAddress {
  let a: ListenAddress;
  try {
    a = parseAddress(spec, 'listen');
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (a.kind === 'tcp' && !isLoopback(a.host) && !allowNonLoopback) {
    throw new ConfigError(`refusing to listen on ${spec}: not a loopback address (use --allow-non-loopback to force)`);
  }
  return a;
}

/** Reads a --config file (start-up: synchronous). */
export function readConfigFile(path: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  return json as Record<string, unknown>;
}
