/**
 * What every endpoint handler works with: the request contexts the lifecycle gives (open or
 * a tenant's), the dependencies of the API, one handler per operation of the routes table, and
 * the answer with the table's status. Apart from api.ts so that handler groups in their own
 * files (attest-api.ts, usage-api.ts) need not import the file that assembles them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Health } from '../protocol/messages.js';
import { ROUTES, type Op, type ResponseOf } from '../protocol/routes.js';
import { readWholeBody, type ByteBudget } from './body.js';
import { parseJsonObject } from './strict-json.js';
import { sendJson, sendNoContent } from './respond.js';
import type { Route } from './router.js';
import type { KeyHealth } from '../keys/key-health.js';
import type { KeyManager } from '../keys/keys.js';
import type { HandlePool } from '../keys/pool.js';
import type { KeyEntry, KeyRegistry } from '../keys/registry.js';
import { authorizeKey } from '../tenants/policy.js';
import type { Tenant } from '../tenants/tenants.js';
import type { ServiceConfig } from '../config.js';
import type { Attestation } from '../attest/attestation.js';
import type { UsageReader } from '../usage/usage.js';
import type { TpmHashAlgs } from '../tpm/hash-algs.js';
import type { GeneralKeyOps } from '../keys/general-ops.js';

/** What a handler of a route anyone may call (auth: none) gets. */
export interface OpenContext {
  req: IncomingMessage;
  res: ServerResponse;
  route: Route;
  query: string | undefined;
}

/** What a handler of a tenant's route gets: the caller, the request's signal, its audit line. */
export interface RequestContext extends OpenContext {
  tenant: Tenant;
  /** Fires on the request's deadline or when the client goes away. */
  signal: AbortSignal;
  audit(decision: 'grant' | 'deny', reason: string, handle?: number): void;
  /** Runs when the request is over (releases memory budget). */
  onFinish(fn: () => void): void;
  /** Set once the handle is known, for the request log. */
  handle?: number;
}

export type Handler<C> = (ctx: C) => void | Promise<void>;

/** One handler per operation of the routes table, with the context its `auth` gives. */
export type Handlers = { readonly [O in Op]: Handler<(typeof ROUTES)[O]['auth'] extends 'none' ? OpenContext : RequestContext> };

/** The answer of operation `op`, with the table's success status. */
export function reply<O extends Op>(res: ServerResponse, op: O, body: ResponseOf<O>, headers?: Record<string, string>): void {
  const status = ROUTES[op].status;
  if (status === 204) return sendNoContent(res);
  sendJson(res, status, body, headers);
}

export interface ApiDeps {
  registry: KeyRegistry;
  keys: KeyManager;
  pool: HandlePool;
  jsonBudget: ByteBudget;
  /** Keys the TPM can no longer load: refused up front, their failures explained (key-health.ts). */
  keyHealth?: KeyHealth;
  /** The answer of GET /v1/health. */
  health(): Health;
  /** The attestation operations (attest/attestation.ts): PCRs, quote, certify, credential activation, the EK. */
  attest: Attestation;
  /** GET /v1/usage: a tenant's resource usage and TPM share (usage/usage.ts). */
  usage: UsageReader;
  /** General keys' operations beyond signing a message (keys/general-ops.ts): digest sign, decrypt, ECDH. */
  appKeys: GeneralKeyOps;
  /** GET /v1/capabilities: the hashes this TPM implements (tpm/hash-algs.ts). */
  hashAlgs: TpmHashAlgs;
  config: Pick<ServiceConfig, 'maxJsonBytes' | 'maxInlineMessageBytes' | 'maxStreamBytes' | 'bodyTimeoutMs' | 'minBodyBytesPerSec' | 'bodyRateGraceMs'> & Partial<Pick<ServiceConfig, 'rawChannel'>>;
}

/**
 * `handle` → the caller's committed key, or the allow-list's refusal (400/403/409); audited
 * either way, the reason prefixed with `role` when one request names two keys (certify).
 */
export function ownKey(d: Pick<ApiDeps, 'registry' | 'pool'>, ctx: RequestContext, handle: number, role?: string): KeyEntry {
  const r = authorizeKey(d.registry, d.pool, ctx.tenant, handle);
  const why = (reason: string): string => (role === undefined ? reason : `${role}: ${reason}`);
  if (!r.ok) {
    ctx.audit('deny', why(r.reason), handle);
    throw r.error;
  }
  ctx.audit('grant', why('owner'), handle);
  return r.entry;
}

/** The JSON body of `op`, with only the members the routes table lists (its memory released when the request ends). */
export async function jsonBody(d: Pick<ApiDeps, 'config' | 'jsonBudget'>, ctx: RequestContext, op: Op): Promise<Record<string, unknown>> {
  const { bytes, release } = await readWholeBody(ctx.req, {
    maxBytes: d.config.maxJsonBytes,
    idleMs: d.config.bodyTimeoutMs,
    minBytesPerSec: d.config.minBodyBytesPerSec,
    rateGraceMs: d.config.bodyRateGraceMs,
    signal: ctx.signal,
    budget: d.jsonBudget,
  });
  ctx.onFinish(release);
  return parseJsonObject(bytes, ROUTES[op].fields);
}
