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

/** Each route's path as segments; a parameter is `{name}` (its name kept, undefined for a literal). */
const PATTERNS: ReadonlyArray<{ op: Op; method: string; segments: readonly string[]; params: ReadonlyArray<string | undefined> }> = OPS.map((op) => {
  const segments = ROUTES[op].path.slice(1).split('/');
  return { op, method: ROUTES[op].method, segments, params: segments.map((p) => (isParam(p) ? p.slice(1, -1) : undefined)) };
});

function isParam(s: string): boolean {
  return s.startsWith('{') && s.endsWith('}');
}

/** The path's parameters if it fits the pattern; checked before anything is allocated (every request tries every route). */
function match(p: (typeof PATTERNS)[number], segments: readonly string[]): Record<string, string> | undefined {
  if (p.segments.length !== segments.length) return undefined;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (p.params[i] !== undefined ? s === '' : p.segments[i] !== s) return undefined;
  }
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const name = p.params[i];
    if (name !== undefined) params[name] = segments[i]!;
  }
  return params;
}

export function route(method: string | undefined, segments: readonly string[]): Route {
  const found: Array<{ op: Op; method: string; params: Record<string, string> }> = [];
  for (const p of PATTERNS) {
    const params = match(p, segments);
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
