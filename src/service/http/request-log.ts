/**
 * The log lines of one request: an audit line per policy decision, and one request line when
 * it is over (docs/SERVICE.md, Logging). Every line carries the request's id, which is also the
 * `X-Request-Id` header, so a tenant's report can be matched to the host's reasons.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { formatHandle } from '../protocol/handles.js';
import type { Op } from '../protocol/routes.js';
import type { Peer } from '../tenants/auth.js';
import type { Tenant } from '../tenants/tenants.js';

// Request ids come from a pool of random bytes filled 128 ids at a time: one randomBytes call
// per request was the largest single JS cost of a hot sign (CPU profile, ~60 us each).
const ID_BYTES = 8;
const POOL_IDS = 128;
let pool = Buffer.alloc(0);
let poolAt = 0;

function newRequestId(): string {
  if (poolAt >= pool.length) {
    pool = randomBytes(ID_BYTES * POOL_IDS);
    poolAt = 0;
  }
  poolAt += ID_BYTES;
  return pool.toString('hex', poolAt - ID_BYTES, poolAt);
}

export class RequestLog {
  readonly requestId = newRequestId();
  private readonly started = performance.now();
  op: Op | undefined;
  tenant: Tenant | undefined;
  /** Set once the handle is known. */
  handle: number | undefined;
  /** ok, client-gone, or the error code answered. */
  outcome = 'ok';

  constructor(
    private readonly log: Logger,
    private readonly peer: Peer,
    /** Single-tenant mode: every request line is a warning (no identity was checked). */
    private readonly singleTenant: boolean,
  ) {}

  audit(op: string, decision: 'grant' | 'deny', reason: string, h?: number): void {
    this.log.info(
      {
        event: 'audit',
        requestId: this.requestId,
        tenant: this.tenant?.id ?? null,
        op,
        handle: h === undefined ? null : formatHandle(h),
        decision,
        reason,
        listener: this.peer.listener,
        cid: this.peer.cid,
      },
      `${decision} ${op}`,
    );
  }

  /** The request line, written once the response is closed. */
  finished(status: number): void {
    const fields = {
      event: 'request',
      requestId: this.requestId,
      tenant: this.tenant?.id ?? null,
      op: this.op ?? null,
      handle: this.handle === undefined ? null : formatHandle(this.handle),
      outcome: this.outcome,
      status,
      durationMs: Math.round(performance.now() - this.started),
      listener: this.peer.listener,
      cid: this.peer.cid,
    };
    if (this.singleTenant) this.log.warn(fields, 'request served in SINGLE-TENANT mode (no identity checked)');
    else this.log.info(fields, 'request');
  }
}
