/**
 * Method and path → operation, from the routes table (protocol/routes.ts). A path no route has
 * is 404; a known path with another method is 405, with `Allow` listing the path's methods.
 */
import { methodNotAllowed, notFound } from '../protocol/errors.js';
import { OPS, ROUTES, type Op } from '../protocol/routes.js';

export type { Op };

export interface Route {
  op: Op;
  /** Path parameters by name ({handle}), still unparsed. */
  params: Readonly<Record<string, string>>;
}

/** Each route's path as segments; a parameter is `{name}`. */
const PATTERNS: ReadonlyArray<{ op: Op; method: string; segments: readonly string[] }> = OPS.map((op) => ({
  op,
  method: ROUTES[op].method,
  segments: ROUTES[op].path.slice(1).split('/'),
}));

const isParam = (s: string): boolean => s.startsWith('{') && s.endsWith('}');

function match(pattern: readonly string[], segments: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (isParam(p)) {
      if (s === '') return undefined;
      params[p.slice(1, -1)] = s;
    } else if (p !== s) return undefined;
  }
  return params;
}

export function route(method: string | undefined, segments: readonly string[]): Route {
  const found: Array<{ op: Op; method: string; params: Record<string, string> }> = [];
  for (const p of PATTERNS) {
    const params = match(p.segments, segments);
    if (params) found.push({ op: p.op, method: p.method, params });
  }
  if (found.length === 0) throw notFound();
  // Compared with ===, never looked up: a method named like an Object.prototype member finds nothing.
  const hit = found.find((f) => f.method === method);
  if (!hit) {
    const allow = found.map((f) => f.method);
    throw methodNotAllowed(`use ${allow.join(' or ')} here`, allow.join(', '));
  }
  return { op: hit.op, params: hit.params };
}
