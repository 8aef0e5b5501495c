/**
 * The endpoints of general keys (issue 12, docs/API.md "App keys"): RSA-OAEP decryption and
 * ECDH with the caller's own decrypt keys. Each parses its body strictly, acts only on the
 * caller's own key (authorizeKey, audited), checks the key's usage before the TPM sees a
 * command, and hands one TPM job to keys/general-ops.ts.
 */
import type { KeyEntry } from '../keys/registry.js';
import { describeValue } from '../protocol/describe-value.js';
import { badRequest } from '../protocol/errors.js';
import { formatHandle, parseHandle } from '../protocol/handles.js';
import { ROUTES } from '../protocol/routes.js';
import { mediaType } from './body.js';
import { jsonBody as readJson, ownKey, reply, type ApiDeps, type Handlers, type RequestContext } from './handler.js';
import { parseQuery } from './query.js';
import { decodeBase64 } from './strict-json.js';

export type AppKeyOp = 'decrypt' | 'ecdh';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

export function appKeyHandlers(d: ApiDeps): Pick<Handlers, AppKeyOp> {
  /** The path's key: the caller's own (403 otherwise, before any TPM command), not known lost. */
  const pathKey = (ctx: RequestContext): KeyEntry => {
    const handle = parseHandle(ctx.route.params.handle);
    ctx.handle = handle;
    const entry = ownKey(d, ctx, handle);
    d.keyHealth?.check(entry);
    return entry;
  };

  const jsonBody = (ctx: RequestContext, op: AppKeyOp): Promise<Record<string, unknown>> => {
    parseQuery(ctx.query, ROUTES[op].query);
    if (mediaType(ctx.req) !== 'json') throw badRequest(`${op} takes a JSON body with the fields ${ROUTES[op].fields.join(', ')}`);
    return readJson(d, ctx, op);
  };

  /** A lost key told as sign tells it (key-health.ts). */
  const explained =
    (entry: KeyEntry) =>
    (e: unknown): never => {
      throw d.keyHealth ? d.keyHealth.explain(entry, e) : e;
    };

  return {
    decrypt: async (ctx) => {
      const entry = pathKey(ctx);
      const body = await jsonBody(ctx, 'decrypt');
      if (body.ciphertext === undefined) throw badRequest('field "ciphertext" (base64, exactly the key\'s modulus size) is required');
      const ciphertext = decodeBase64(body.ciphertext, 'ciphertext');
      if (body.label !== undefined && typeof body.label !== 'string') throw badRequest(`label must be a string (the OAEP label as text), not ${describeValue(body.label)}`);
      const plaintext = await d.appKeys.decrypt(ctx.tenant, entry, ciphertext, body.label, ctx.signal).catch(explained(entry));
      reply(ctx.res, 'decrypt', { handle: formatHandle(entry.handle), plaintext: b64(plaintext) });
    },

    ecdh: async (ctx) => {
      const entry = pathKey(ctx);
      const body = await jsonBody(ctx, 'ecdh');
      if (body.peer === undefined) throw badRequest('field "peer" (the peer\'s public key, PEM) is required');
      if (typeof body.peer !== 'string') throw badRequest(`peer must be a PEM string, not ${describeValue(body.peer)}`);
      const z = await d.appKeys.ecdh(ctx.tenant, entry, body.peer, ctx.signal).catch(explained(entry));
      reply(ctx.res, 'ecdh', { handle: formatHandle(entry.handle), z: b64(z) });
    },
  };
}
