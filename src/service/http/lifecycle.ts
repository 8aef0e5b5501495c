/**
 * One request's way through the service: target → route → (not while draining) → identity
 * (routes with auth: tenant) → the connection marked as a tenant's (admission) → deadline →
 * the route's handler. The request's log lines (request-log.ts), its abort signal
 * (request-signal.ts) and its error answer (error-answer.ts) are each their own module; this
 * one only puts them in order.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config.js';
import { serviceBusy } from '../protocol/errors.js';
import { ROUTES, type Op } from '../protocol/routes.js';
import { authenticate, bearerSecret } from '../tenants/auth.js';
import type { Tenant, TenantDirectory } from '../tenants/tenants.js';
import type { Handlers, OpenContext, RequestContext } from './api.js';
import { mediaType } from './body.js';
import { answerError } from './error-answer.js';
import type { RequestHandler } from './front.js';
import { splitTarget } from './query.js';
import { setRequestId } from './respond.js';
import { RequestLog } from './request-log.js';
import { RequestSignal } from './request-signal.js';
import { route, type Route } from './router.js';

/** What the lifecycle needs of the HTTP front (front.ts). */
export interface FrontGate {
  readonly draining: boolean;
  /** A request on this connection authenticated: it may use the tenants' reserve from now on. */
  authenticated(socket: Duplex): void;
}

export interface LifecycleDeps {
  log: Logger;
  config: Pick<ServiceConfig, 'singleTenant' | 'deadlineMs' | 'streamDeadlineMs'>;
  handlers: Handlers;
  /** The tenants as last (re)loaded. */
  tenants(): TenantDirectory;
  /** Single-tenant mode: every caller is this tenant, unidentified. */
  singleTenant?: Tenant;
  front(): FrontGate;
  /** An identified tenant's request is over, with this status (usage accounting). */
  answered?(tenant: Tenant, op: Op, status: number): void;
}

export function requestHandler(d: LifecycleDeps): RequestHandler {
  return (req, res, peer) => {
    const record = new RequestLog(d.log, peer, d.config.singleTenant);
    setRequestId(res, record.requestId);
    const stop = new RequestSignal();
    const finishers: Array<() => void> = [];

    res.once('close', () => {
      const finished = res.writableFinished;
      stop.closed(finished);
      if (!finished && record.outcome === 'ok') record.outcome = 'client-gone';
      for (const f of finishers) f();
      record.finished(res.statusCode);
      if (record.tenant && record.op) d.answered?.(record.tenant, record.op, res.statusCode);
    });

    const run = async (): Promise<void> => {
      const target = splitTarget(req.url);
      const r = route(req.method, target.segments);
      record.op = r.op;
      if (d.front().draining) throw serviceBusy('the service is shutting down');
      const def = ROUTES[r.op];
      if (def.auth === 'none') return (d.handlers[r.op] as (ctx: OpenContext) => void | Promise<void>)({ req, res, route: r, query: target.query });

      const op = r.op;
      try {
        record.tenant = d.singleTenant ?? authenticate(d.tenants(), peer, bearerSecret(req.rawHeaders));
      } catch (e) {
        record.audit(op, 'deny', 'unauthenticated');
        throw e;
      }
      const tenant = record.tenant;
      d.front().authenticated(req.socket); // the connection may now use the tenants' reserve
      const streamed = def.body === 'json-or-stream' && mediaType(req) === 'octet-stream';
      stop.startDeadline(streamed ? d.config.streamDeadlineMs : d.config.deadlineMs);
      const ctx = new TenantContext(req, res, r, target.query, tenant, stop.signal, record, op, finishers);
      await (d.handlers[op] as (ctx: RequestContext) => void | Promise<void>)(ctx);
    };
    run().catch((e: unknown) => answerError(req, res, e, record, d.log));
  };
}

/**
 * A tenant's request context as one object of a fixed shape (a class, not a literal with a
 * spread and accessors): it is made for every request.
 */
class TenantContext implements RequestContext {
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: Route,
    readonly query: string | undefined,
    readonly tenant: Tenant,
    readonly signal: AbortSignal,
    private readonly record: RequestLog,
    private readonly op: Op,
    private readonly finishers: Array<() => void>,
  ) {}

  audit(decision: 'grant' | 'deny', reason: string, h?: number): void {
    this.record.audit(this.op, decision, reason, h);
  }

  onFinish(f: () => void): void {
    this.finishers.push(f);
  }

  // Written through at once: a handler that answers synchronously (get-key, get-public)
  // has its response closed, and its request line written, before an `await` returns.
  get handle(): number | undefined {
    return this.record.handle;
  }

  set handle(h: number | undefined) {
    this.record.handle = h;
  }
}
