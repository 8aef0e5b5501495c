/**
 * The running service: state and TPM core, tenants, the HTTP front and its listeners, and
 * the request pipeline — route → identity → (the endpoint's own parsing and policy) → TPM
 * queue — with one log line per request and an audit line per decision.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Tpm } from '../tpm/index.js';
import { Api, type RequestContext } from './http/api.js';
import { authenticate, bearerSecret, type Peer } from './tenants/auth.js';
import type { ServiceConfig } from './config.js';
import { openCore, type Core } from './core.js';
import { deadline, serviceBusy, type ServiceError } from './protocol/errors.js';
import { hostReason, toServiceError } from './tpm/error-mapping.js';
import { formatHandle } from './protocol/handles.js';
import { ByteBudget, ClientGoneError, expectNoBody, mediaType } from './http/body.js';
import { HttpFront } from './http/front.js';
import { openListener, type Listener } from './http/listeners.js';
import { parseQuery, splitTarget } from './http/query.js';
import { sendError, sendJson } from './http/respond.js';
import { route, type Route } from './http/router.js';
import { createLogger } from './logger.js';
import { listenTargets } from './http/socket-activation.js';
import { filePurgeResults, purgeRecord, readPurgeFile, type PurgeResult } from './tenants/purge.js';
import { parseTenants, recordOf, TenantDirectory, type Tenant } from './tenants/tenants.js';
import { VERSION } from './protocol/version.js';

export interface ServiceDeps {
  /** Use this TPM instead of opening config.tpm (tests wrap it to count commands). */
  tpm?: Tpm;
  logger?: Logger;
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

const SINGLE_TENANT_ID = 'default';
/** How long the rest of an unwanted request body is read (and dropped) after an error answer. */
const BODY_GRACE_MS = 2000;

function loadTenantsSync(path: string, defaultMaxKeys: number): TenantDirectory {
  return new TenantDirectory(parseTenants(JSON.parse(readFileSync(path, 'utf8')), defaultMaxKeys));
}

export async function startService(config: ServiceConfig, deps: ServiceDeps = {}): Promise<RunningService> {
  const log = deps.logger ?? createLogger(config.logLevel);
  if (config.singleTenant) {
    log.warn({ event: 'single-tenant' }, 'SINGLE-TENANT DEVELOPMENT MODE: callers are not identified and share one set of keys; never use this in production');
  }
  let tenants = config.singleTenant ? new TenantDirectory([]) : loadTenantsSync(config.tenants!, config.defaultMaxKeys);
  const singleTenant: Tenant = { id: SINGLE_TENANT_ID, maxKeys: config.defaultMaxKeys };

  // A key commits only while its owner's record is configured (see KeyManager.purge).
  const core = await openCore(config, log, deps.tpm, { ownerAlive: (record) => config.singleTenant || tenants.ofRecord(record) !== undefined });
  const api = new Api({ registry: core.registry, keys: core.keys, pool: core.pool, jsonBudget: new ByteBudget(config.jsonMemoryBudget), keyHealth: core.keyHealth, config });

  const health = (): Record<string, unknown> => ({
    status: core.supervisor.healthy ? 'ok' : 'degraded',
    tpm: { reachable: core.supervisor.reachable === true },
    queue: { depth: core.queue.depth, capacity: core.queue.capacity },
    version: VERSION,
  });

  const handle = (req: IncomingMessage, res: ServerResponse, peer: Peer): void => {
    const started = performance.now();
    const requestId = randomBytes(8).toString('hex');
    res.setHeader('X-Request-Id', requestId);
    const ctl = new AbortController();
    const finishers: Array<() => void> = [];
    let r: Route | undefined;
    let tenant: Tenant | undefined;
    let handleNum: number | undefined;
    let outcome = 'ok';
    let timer: NodeJS.Timeout | undefined;

    const audit = (op: string, decision: 'grant' | 'deny', reason: string, h?: number): void => {
      log.info(
        { event: 'audit', requestId, tenant: tenant?.id ?? null, op, handle: h === undefined ? null : formatHandle(h), decision, reason, listener: peer.listener, cid: peer.cid },
        `${decision} ${op}`,
      );
    };

    res.once('close', () => {
      clearTimeout(timer);
      if (!res.writableFinished) {
        ctl.abort(new ClientGoneError());
        if (outcome === 'ok') outcome = 'client-gone';
      }
      for (const f of finishers) f();
      const fields = {
        event: 'request',
        requestId,
        tenant: tenant?.id ?? null,
        op: r?.op ?? null,
        handle: handleNum === undefined ? null : formatHandle(handleNum),
        outcome,
        status: res.statusCode,
        durationMs: Math.round(performance.now() - started),
        listener: peer.listener,
        cid: peer.cid,
      };
      if (config.singleTenant) log.warn(fields, 'request served in SINGLE-TENANT mode (no identity checked)');
      else log.info(fields, 'request');
    });

    const fail = (e: unknown): void => {
      if (e instanceof ClientGoneError || res.destroyed) {
        outcome = 'client-gone';
        return;
      }
      // The tenant's message names no host detail; the reason is logged under the same id.
      const se: ServiceError = toServiceError(e, requestId);
      const reason = hostReason(e);
      if (se.status === 500) log.error({ event: 'internal-error', requestId, err: e }, 'internal error');
      else if (reason !== undefined) log.warn({ event: 'request-failed', requestId, tenant: tenant?.id ?? null, code: se.code, reason }, `request failed: ${se.code}`);
      outcome = se.code;
      if (res.headersSent) return void res.destroy();
      sendError(res, se);
      // A body not read to its end: read the rest and drop it, keeping the connection open, so a
      // client still uploading reads this answer instead of a broken pipe (unless it asked for
      // `Connection: close`: node then closes after the answer); one that keeps sending or
      // stalls loses the connection after a short grace.
      if (!req.complete) {
        req.resume();
        res.once('finish', () => setTimeout(() => !req.complete && req.socket.destroy(), BODY_GRACE_MS).unref());
      }
    };

    const run = async (): Promise<void> => {
      const target = splitTarget(req.url);
      r = route(req.method, target.segments);
      if (front.draining) throw serviceBusy('the service is shutting down');
      if (r.op === 'health') {
        parseQuery(target.query, []);
        expectNoBody(req);
        return sendJson(res, 200, health());
      }
      const op = r.op;
      try {
        tenant = config.singleTenant ? singleTenant : authenticate(tenants, peer, bearerSecret(req.rawHeaders));
      } catch (e) {
        audit(op, 'deny', 'unauthenticated');
        throw e;
      }
      front.authenticated(req.socket); // the connection may now use the tenants' reserve
      const streamed = op === 'sign' && mediaType(req) === 'octet-stream';
      const ms = streamed ? config.streamDeadlineMs : config.deadlineMs;
      timer = setTimeout(() => ctl.abort(deadline(`the request did not complete within its deadline of ${ms} ms`)), ms);
      const ctx: RequestContext = {
        req,
        res,
        route: r,
        tenant,
        signal: ctl.signal,
        query: target.query,
        audit: (decision, reason, h) => audit(op, decision, reason, h),
        onFinish: (f) => finishers.push(f),
        // Written through at once: a handler that answers synchronously (get-key, get-public)
        // has its response closed, and its request line written, before an `await` returns.
        get handle() {
          return handleNum;
        },
        set handle(h: number | undefined) {
          handleNum = h;
        },
      };
      await api.handle(ctx);
    };
    run().catch(fail);
  };

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
  core.supervisor.start();
  log.info(
    { event: 'started', keyStore: config.keyStore, pool: core.pool.toString(), tpm: config.tpm, tenants: tenants.tenants.length, keys: core.registry.all().length },
    'eve-tpm-service started',
  );

  let reloading: Promise<void> = Promise.resolve();
  let lastTenantsStamp = '';
  const reloadNow = async (): Promise<void> => {
    // Purge requests are read before the tenants: the admin command removes a tenant before it
    // files the purge of its record, so the tenants read next already lack every record asked for.
    const requested = (await readPurgeFile(config.stateDir)).requests;
    if (!config.singleTenant) {
      try {
        const st = await fsp.stat(config.tenants!);
        const text = await fsp.readFile(config.tenants!, 'utf8');
        tenants = new TenantDirectory(parseTenants(JSON.parse(text), config.defaultMaxKeys));
        lastTenantsStamp = `${st.mtimeMs}:${st.size}`;
        log.info({ event: 'tenants-reloaded', tenants: tenants.tenants.length }, 'tenants reloaded');
      } catch (e) {
        log.error({ event: 'tenants-reload-failed', err: (e as Error).message }, 'the tenants file is invalid; keeping the previous tenants');
      }
    }
    // Every record purged here is one no tenant has now, and from now on (ownerAlive) no key of
    // it can commit. Each request gets a result for the admin command.
    if (requested.length === 0) return;
    const results: PurgeResult[] = [];
    for (const r of requested) {
      const holder = config.singleTenant && r.record === recordOf(singleTenant) ? singleTenant : tenants.ofRecord(r.record);
      if (holder) {
        log.warn({ event: 'purge-refused', tenant: holder.id, record: r.record }, 'purge requested for the record of a configured tenant; refused');
        results.push({ ...r, purged: 0, undone: 0, remaining: core.registry.ofRecord(r.record).length, error: `record ${r.record} belongs to the configured tenant ${holder.id}` });
        continue;
      }
      try {
        results.push({ ...r, ...(await purgeRecord(core.keys, r.record, r.tenant, log)) });
      } catch (e) {
        log.error({ event: 'purge-failed', tenant: r.tenant, record: r.record, err: (e as Error).message }, 'purge failed');
        results.push({ ...r, purged: 0, undone: 0, remaining: core.registry.ofRecord(r.record).length, error: (e as Error).message });
      }
    }
    try {
      await filePurgeResults(config.stateDir, results);
    } catch (e) {
      // The requests stay filed; the next reload carries them out again (nothing left to do).
      log.error({ event: 'purge-failed', err: (e as Error).message }, 'could not file the purge results');
    }
  };
  const reload = (): Promise<void> => (reloading = reloading.then(reloadNow, reloadNow));

  // Pick up `tenant add` without a restart: look at the file's stamp every 2 s (async stat).
  const watch = config.singleTenant
    ? undefined
    : setInterval(() => {
        fsp.stat(config.tenants!).then(
          (st) => {
            const stamp = `${st.mtimeMs}:${st.size}`;
            if (lastTenantsStamp === '') lastTenantsStamp = stamp;
            else if (stamp !== lastTenantsStamp) void reload();
          },
          () => {},
        );
      }, 2000);
  watch?.unref();

  let closing: Promise<void> | undefined;
  return {
    addresses: listeners.map((l) => l.address),
    core,
    logger: log,
    reload,
    close() {
      closing ??= (async () => {
        clearInterval(watch);
        log.info({ event: 'draining' }, 'draining requests in flight');
        await Promise.all(listeners.map((l) => l.close().catch(() => {})));
        await front.drain(config.drainTimeoutMs);
        core.queue.rejectWaiting(serviceBusy('the service is shutting down'));
        await core.queue.idle();
        await reloading.catch(() => {});
        await core.close();
        log.info({ event: 'stopped' }, 'eve-tpm-service stopped');
      })();
      return closing;
    },
  };
}
