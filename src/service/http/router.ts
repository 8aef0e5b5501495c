/** Method and path → operation. Unknown paths are 404, known paths with another method 405. */
import { methodNotAllowed, notFound } from '../protocol/errors.js';

export type Op = 'health' | 'create-key' | 'list-keys' | 'get-key' | 'get-public' | 'sign' | 'delete-key';

export interface Route {
  op: Op;
  /** The {handle} path segment, still unparsed. */
  handle?: string;
}

export function route(method: string | undefined, segments: readonly string[]): Route {
  const [v1, a, b, c, ...rest] = segments;
  let byMethod: Partial<Record<string, Op>> | undefined;
  if (v1 === 'v1' && rest.length === 0) {
    if (a === 'health' && b === undefined) byMethod = { GET: 'health' };
    else if (a === 'keys' && b === undefined) byMethod = { GET: 'list-keys', POST: 'create-key' };
    else if (a === 'keys' && b !== undefined && b !== '' && c === undefined) byMethod = { GET: 'get-key', DELETE: 'delete-key' };
    else if (a === 'keys' && b !== undefined && b !== '' && c === 'public') byMethod = { GET: 'get-public' };
    else if (a === 'keys' && b !== undefined && b !== '' && c === 'sign') byMethod = { POST: 'sign' };
  }
  if (!byMethod) throw notFound();
  // Own keys only: a method named like an Object.prototype member must not find one.
  const op = method !== undefined && Object.hasOwn(byMethod, method) ? byMethod[method] : undefined;
  if (!op) throw Object.assign(methodNotAllowed(`use ${Object.keys(byMethod).join(' or ')} here`), { allow: Object.keys(byMethod).join(', ') });
  return b !== undefined && op !== 'list-keys' && op !== 'create-key' && op !== 'health' ? { op, handle: b } : { op };
}
