/**
 * GET /v1/usage (issue 14): the caller's own resource usage as the host sees it, and its share
 * of the TPM (usage/usage.ts). Only the caller's configured sources are read: no parameter
 * names a cgroup or an interface, so no tenant can ask for another's. Never enters the TPM queue.
 */
import { ROUTES } from '../protocol/routes.js';
import { expectNoBody } from './body.js';
import { reply, type ApiDeps, type Handlers } from './handler.js';
import { parseQuery } from './query.js';

export function usageHandlers(d: Pick<ApiDeps, 'usage'>): Pick<Handlers, 'usage'> {
  return {
    usage: async (ctx) => {
      parseQuery(ctx.query, ROUTES.usage.query);
      expectNoBody(ctx.req);
      ctx.audit('grant', 'own usage only');
      reply(ctx.res, 'usage', await d.usage.read(ctx.tenant));
    },
  };
}
