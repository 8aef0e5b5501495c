/** Writing answers: JSON with no-store caching, errors as docs/API.md describes them. */
import type { ServerResponse } from 'node:http';
import type { ServiceError } from '../protocol/errors.js';
import { MEDIA_JSON } from '../protocol/routes.js';

const JSON_TYPE = `${MEDIA_JSON}; charset=utf-8`;

/** The request's id, sent with its answer as X-Request-Id (set by lifecycle.ts before any handler runs). */
const REQUEST_ID = Symbol('requestId');
type WithId = ServerResponse & { [REQUEST_ID]?: string };

export function setRequestId(res: ServerResponse, id: string): void {
  (res as WithId)[REQUEST_ID] = id;
}

// Every header goes in the one writeHead: with none set before it, node:http writes (and
// validates) them as given instead of storing each through setHeader — less garbage per answer.
function answerHeaders(res: ServerResponse, extra: Record<string, string> | undefined): Record<string, string> {
  const h: Record<string, string> = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
  const id = (res as WithId)[REQUEST_ID];
  if (id !== undefined) h['X-Request-Id'] = id;
  if (extra) for (const k in extra) h[k] = extra[k]!;
  return h;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body);
  const h = answerHeaders(res, headers);
  h['Content-Type'] = JSON_TYPE;
  h['Content-Length'] = String(Buffer.byteLength(text));
  res.writeHead(status, h);
  res.end(text);
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204, answerHeaders(res, undefined));
  res.end();
}

export function sendError(res: ServerResponse, e: ServiceError, headers: Record<string, string> = {}): void {
  const h: Record<string, string> = { ...headers };
  if (e.retryAfter !== undefined) h['Retry-After'] = String(e.retryAfter);
  if (e.allow) h.Allow = e.allow;
  sendJson(res, e.status, e.toJSON(), h);
}

/** A whole HTTP/1.1 error response as raw bytes, for sockets turned away before HTTP parsing. */
export function rawErrorResponse(status: number, reason: string, e: ServiceError): string {
  const text = JSON.stringify(e.toJSON());
  const retry = e.retryAfter !== undefined ? `Retry-After: ${e.retryAfter}\r\n` : '';
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${retry}Connection: close\r\n\r\n${text}`;
}
