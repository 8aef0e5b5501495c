/**
 * GET /v1/usage (issue 14): the caller's own resource usage as the host sees it, and its share
 * of the TPM (usage/usage.ts). Only the caller's configured sources are read: no parameter
 * names a cgroup or an interface, so no tenant can ask for another's. Never enters the TPM queue.
 *
 * Typed by what it uses, not by api.ts's Handlers/ApiDeps: api.ts imports this file, and the
 * layers test allows no import cycle (RequestContext is assignable to UsageContext).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ROUTES, type ResponseOf } from '../protocol/routes.js';
import type { Tenant } from '../tenants/tenants.js';
import type { UsageReader } from '../usage/usage.js';
import { expectNoBody } from './body.js';
import { parseQuery } from './query.js';
import { sendJson } from './respond.js';

export interface UsageContext {
  req: IncomingMessage;
  res: ServerResponse;
  query: string | undefined;
  tenant: Tenant;
  audit(decision: 'grant' | 'deny', reason: string): void;
}

export function usageHandlers(d: { usage: UsageReader }): { usage: (ctx: UsageContext) => Promise<void> } {
  return {
    usage: async (ctx) => {
      parseQuery(ctx.query, ROUTES.usage.query);
      expectNoBody(ctx.req);
      ctx.audit('grant', 'own usage only');
      const body: ResponseOf<'usage'> = await d.usage.read(ctx.tenant);
      sendJson(ctx.res, ROUTES.usage.status, body);
    },
  };
}
