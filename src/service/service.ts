/**
 * The running service, put together: state and TPM core, the tenants (tenants/live-tenants.ts),
 * the endpoints (http/api.ts, bound to the routes table of protocol/routes.ts), the lifecycle of
 * a request (http/lifecycle.ts), the HTTP front and its listeners, and an orderly close.
 */
import type { Logger } from 'pino';
import type { Tpm } from '../tpm/index.js';
import { Api } from './http/api.js';
import type { ServiceConfig } from './config.js';
import { openCore, type Core } from './core.js';
import { serviceBusy } from './protocol/errors.js';
import { ByteBudget } from './http/body.js';
import { HttpFront } from './http/front.js';
import { requestHandler } from './http/lifecycle.js';
import { openListener, type Listener } from './http/listeners.js';
import { createLogger } from './logger.js';
import { listenTargets } from './http/socket-activation.js';
import { LiveTenants } from './tenants/live-tenants.js';
import { VERSION } from './protocol/version.js';
import { Attestation } from './attest/attestation.js';
import { GeneralKeyOps } from './keys/general-ops.js';
import { TpmAccounting } from './usage/tpm-accounting.js';
import { UsageReader } from './usage/usage.js';
import { StatsSocket, statsSocketPath } from './usage/stats-socket.js';
import { TpmHashAlgs } from './tpm/hash-algs.js';
import { RAW_IDLE_MS, RawChannel, isRawUpgrade } from './raw/channel.js';

export interface ServiceDeps {
  /** Use this TPM instead of opening config.tpm (tests wrap it to count commands). */
  tpm?: Tpm;
  logger?: Logger;
  /** Where the usage provider finds network interfaces (default /sys/class/net; tests: a fixture tree). */
  netRoot?: string;
}

export interface RunningService {
  /** Addresses actually listened on (tcp port 0 resolved). */
  readonly addresses: string[];
  readonly core: Core;
  readonly logger: Logger;
  /** Re-reads the tenants file and carries out purge requests. */
  reload(): Promise<void>;
  /** Stops accepting, finishes or times out requests in flight, releases everything. */
  close(): Promise<void>;
}

export async function startService(config: ServiceConfig, deps: ServiceDeps = {}): Promise<RunningService> {
  const log = deps.logger ?? createLogger(config.logLevel);
  if (config.singleTenant) {
    log.warn({ event: 'single-tenant' }, 'SINGLE-TENANT DEVELOPMENT MODE: callers are not identified and share one set of keys; never use this in production');
  }
  const tenants = new LiveTenants(config, log);

  // A key commits only while its owner's record is configured (see KeyManager.purge).
  const core = await openCore(config, log, deps.tpm, { ownerAlive: (record) => tenants.ownerAlive(record) });
  // Usage (issue 14): what the service accounts to each tenant, and its resource readings.
  const accounting = new TpmAccounting();
  accounting.watch(core.queue);
  const usage = new UsageReader({ accounting, keysHeld: (t) => core.registry.ofTenant(t).length, ...(deps.netRoot === undefined ? {} : { netRoot: deps.netRoot }) });
  const api = new Api({
    usage,
    hashAlgs: new TpmHashAlgs(core.queue, () => core.supervisor.reachable),
    registry: core.registry,
    keys: core.keys,
    pool: core.pool,
    jsonBudget: new ByteBudget(config.jsonMemoryBudget),
    keyHealth: core.keyHealth,
    appKeys: new GeneralKeyOps({ queue: core.queue, registry: core.registry, keys: core.keys }),
    attest: new Attestation({ queue: core.queue, registry: core.registry, keys: core.keys, keyHealth: core.keyHealth, deviceAk: config.deviceAk }),
    config,
    health: () => ({
      status: core.supervisor.healthy ? 'ok' : 'degraded',
      tpm: { reachable: core.supervisor.reachable === true },
      queue: { depth: core.queue.depth, capacity: core.queue.capacity },
      version: VERSION,
    }),
  });

  const handle = requestHandler({
    log,
    config,
    handlers: api.handlers,
    tenants: () => tenants.directory,
    ...(tenants.single ? { singleTenant: tenants.single } : {}),
    front: () => front,
    answered: (t, op, status) => accounting.answered(t.id, op, status),
  });

  // The raw TPM channel (issue 15): stock TPM software through the firewall (src/service/raw).
  const raw = new RawChannel({
    queue: core.queue,
    chip: core.tpm,
    transport: core.tpm.transport,
    log,
    tenants: () => tenants.directory,
    ...(tenants.single ? { singleTenant: tenants.single } : {}),
    draining: () => front.draining,
    frameTimeoutMs: config.headersTimeoutMs,
    idleTimeoutMs: RAW_IDLE_MS,
  });
  // The apps' NV placement and virtual persistent handles: without them the raw channel cannot serve safely.
  if (config.rawChannel) {
    await raw.loadState(config.stateDir).catch(async (e: unknown) => {
      await core.close();
      throw e;
    });
  }

  const front = new HttpFront(
    {
      headersTimeoutMs: config.headersTimeoutMs,
      requestTimeoutMs: config.streamDeadlineMs + config.headersTimeoutMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      maxConnections: config.maxConnections,
      maxConnectionsPerPeer: config.maxConnectionsPerPeer,
      reservedTenantConnections: config.reservedTenantConnections,
    },
    handle,
    log,
    config.rawChannel ? { wants: isRawUpgrade, handle: (req, socket, head, peer, gate) => raw.upgrade(req, socket, head, peer, gate) } : undefined,
  );

  const listeners: Listener[] = [];
  try {
    for (const { address, name } of listenTargets(config.listen)) {
      const l = await openListener(address, front.accept, {
        maxConnections: config.maxConnections,
        allowNonLoopback: config.allowNonLoopback,
        onError: (e) => log.warn({ event: 'vsock', err: e.message }, 'vsock listener problem'),
      });
      listeners.push(l);
      log.info({ event: 'listening', address: l.address, ...(name === undefined ? {} : { name }) }, `listening on ${l.address}`);
    }
  } catch (e) {
    await Promise.all(listeners.map((l) => l.close()));
    await core.close();
    throw e;
  }
  // Host root only (state dir 0700, socket 0600); without it the service still serves its tenants.
  const stats = await StatsSocket.open(statsSocketPath(config.stateDir), {
    reader: usage,
    tenants: () => (tenants.single ? [tenants.single] : tenants.directory.tenants),
    since: accounting.since,
    log,
  }).catch((e: unknown) => {
    log.warn({ event: 'stats-socket', err: (e as Error).message }, `no stats socket: ${(e as Error).message}`);
    return undefined;
  });
  core.supervisor.start();
  log.info(
    { event: 'started', keyStore: config.keyStore, pool: core.pool.toString(), tpm: config.tpm, tenants: tenants.directory.tenants.length, keys: core.registry.all().length },
    'eve-tpm-service started',
  );

  // Purges on reload, and `tenant add` picked up without a restart.
  tenants.start({ keys: core.keys, registry: core.registry, ...(config.rawChannel ? { rawPurge: (record: string) => raw.purge(record), rawTenantsChanged: () => raw.tenantsChanged() } : {}) });

  let closing: Promise<void> | undefined;
  return {
    addresses: listeners.map((l) => l.address),
    core,
    logger: log,
    reload: () => tenants.reload(),
    close() {
      closing ??= (async () => {
        tenants.stopWatching();
        log.info({ event: 'draining' }, 'draining requests in flight');
        await Promise.all(listeners.map((l) => l.close().catch(() => {})));
        await front.drain(config.drainTimeoutMs);
        await stats?.close();
        core.queue.rejectWaiting(serviceBusy('the service is shutting down'));
        await core.queue.idle();
        await tenants.settled();
        await core.close();
        log.info({ event: 'stopped' }, 'eve-tpm-service stopped');
      })();
      return closing;
    },
  };
}
