/**
 * Request targets parsed strictly: a path of plain segments (no percent-encoding, no empty or
 * dot segments) and a query whose keys are known and appear once.
 */
import { describeValue } from '../protocol/describe-value.js';
import { badRequest } from '../protocol/errors.js';

export const MAX_TARGET_LENGTH = 2048;

export interface Target {
  segments: string[];
  query: string | undefined;
}

export function splitTarget(url: string | undefined): Target {
  if (!url || url.length > MAX_TARGET_LENGTH || !url.startsWith('/')) throw badRequest('bad request target');
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (/[^A-Za-z0-9/._-]/.test(path)) throw badRequest('the path may contain only letters, digits, "/", ".", "_" and "-"');
  return { segments: path.slice(1).split('/'), query: q < 0 ? undefined : url.slice(q + 1) };
}

export function parseQuery(query: string | undefined, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (query === undefined || query === '') return out;
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw badRequest('malformed query string');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(part.slice(0, eq));
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      throw badRequest('malformed percent-encoding in the query string');
    }
    if (!allowed.includes(key)) throw badRequest(`unknown query parameter ${describeValue(key)} (allowed: ${allowed.join(', ') || 'none'})`);
    if (key in out) throw badRequest(`query parameter ${key} given more than once`);
    out[key] = value;
  }
  return out;
}
