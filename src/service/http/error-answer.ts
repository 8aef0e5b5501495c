/**
 * A failed request's answer: the error as a ServiceError (tpm/error-mapping.ts), its host-side
 * reason logged under the request id (the tenant's message names no host detail), the error
 * body sent, and the rest of an unread request body dealt with.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { hostReason, toServiceError } from '../tpm/error-mapping.js';
import { ClientGoneError } from './body.js';
import type { RequestLog } from './request-log.js';
import { sendError } from './respond.js';

/** How long the rest of an unwanted request body is read (and dropped) after an error answer. */
const BODY_GRACE_MS = 2000;

export function answerError(req: IncomingMessage, res: ServerResponse, e: unknown, record: RequestLog, log: Logger): void {
  if (e instanceof ClientGoneError || res.destroyed) {
    record.outcome = 'client-gone';
    return;
  }
  const requestId = record.requestId;
  const se = toServiceError(e, requestId);
  const reason = hostReason(e);
  if (se.status === 500) log.error({ event: 'internal-error', requestId, err: e }, 'internal error');
  else if (reason !== undefined) log.warn({ event: 'request-failed', requestId, tenant: record.tenant?.id ?? null, code: se.code, reason }, `request failed: ${se.code}`);
  record.outcome = se.code;
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
}
