/** Writing answers: JSON with no-store caching, errors as docs/API.md describes them. */
import type { ServerResponse } from 'node:http';
import type { ServiceError } from '../protocol/errors.js';
import { MEDIA_JSON } from '../protocol/routes.js';

const JSON_TYPE = `${MEDIA_JSON}; charset=utf-8`;

const COMMON = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON,
    'Content-Type': JSON_TYPE,
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204, COMMON);
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
