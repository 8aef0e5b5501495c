/**
 * The attestation endpoints (docs/API.md, Attestation): PCRs, quote, certify (by the app's AK
 * or by the device's key), credential activation, the EK and its certificate. Each parses its
 * input strictly, acts only on the caller's own keys (the allow-list of sign: authorizeKey,
 * audited), and hands one TPM job to attest/attestation.ts.
 */
import { parseSelection } from '../attest/attestation.js';
import { parseBind, parseEkType, parseNonce, requiredString } from '../attest/requests.js';
import type { KeyEntry } from '../keys/registry.js';
import { badRequest } from '../protocol/errors.js';
import { parseHandle } from '../protocol/handles.js';
import { ROUTES, type Op } from '../protocol/routes.js';
import { jsonBody as readJson, ownKey, reply, type ApiDeps, type Handlers, type RequestContext } from './handler.js';
import { expectNoBody, mediaType } from './body.js';
import { parseQuery } from './query.js';
import { decodeBase64 } from './strict-json.js';

export type AttestOp = 'read-pcrs' | 'quote' | 'certify' | 'device-certify' | 'activate-credential' | 'ek-public' | 'ek-certificate';

type BodyOp = 'quote' | 'certify' | 'device-certify' | 'activate-credential';

export function attestHandlers(d: ApiDeps): Pick<Handlers, AttestOp> {
  const pathKey = (ctx: RequestContext): KeyEntry => {
    const handle = parseHandle(ctx.route.params.handle);
    ctx.handle = handle;
    const entry = ownKey(d, ctx, handle, 'key');
    d.keyHealth?.check(entry);
    return entry;
  };

  /** The JSON body of `op` (only the table's members), refused up front unless it is JSON. */
  const jsonBody = (ctx: RequestContext, op: BodyOp): Promise<Record<string, unknown>> => {
    parseQuery(ctx.query, ROUTES[op].query);
    if (mediaType(ctx.req) !== 'json') throw badRequest(`${op} takes a JSON body with the fields ${ROUTES[op].fields.join(', ')}`);
    return readJson(d, ctx, op);
  };

  /** A device-wide read that names no key: granted to every tenant, audited. */
  const deviceRead = (ctx: RequestContext, op: Op): Record<string, string | undefined> => {
    const q = parseQuery(ctx.query, ROUTES[op].query);
    expectNoBody(ctx.req);
    ctx.audit('grant', 'device-wide read');
    return q;
  };

  return {
    'read-pcrs': async (ctx) => {
      const q = deviceRead(ctx, 'read-pcrs');
      const selection = q.selection === undefined ? undefined : parseSelection(q.selection);
      reply(ctx.res, 'read-pcrs', await d.attest.readPcrs(ctx.tenant, selection, ctx.signal));
    },

    quote: async (ctx) => {
      const entry = pathKey(ctx);
      const body = await jsonBody(ctx, 'quote');
      const selection = parseSelection(requiredString(body.pcrs, 'pcrs', 'a PCR selection such as sha256:0,1,2'));
      const nonce = parseNonce(body.nonce);
      const bind = parseBind(body.bind);
      reply(ctx.res, 'quote', await d.attest.quote(ctx.tenant, entry, selection, nonce, bind, ctx.signal));
    },

    certify: async (ctx) => {
      const signer = pathKey(ctx);
      const body = await jsonBody(ctx, 'certify');
      if (body.object === undefined) throw badRequest('field "object" is required (the handle of your key to certify)');
      const object = ownKey(d, ctx, parseHandle(body.object, 'object'), 'object');
      d.keyHealth?.check(object);
      const nonce = parseNonce(body.nonce);
      const bind = parseBind(body.bind);
      reply(ctx.res, 'certify', await d.attest.certify(ctx.tenant, signer, object, nonce, bind, ctx.signal));
    },

    'device-certify': async (ctx) => {
      const entry = pathKey(ctx);
      const body = await jsonBody(ctx, 'device-certify');
      const nonce = parseNonce(body.nonce);
      reply(ctx.res, 'device-certify', await d.attest.deviceCertify(ctx.tenant, entry, nonce, ctx.signal));
    },

    'activate-credential': async (ctx) => {
      const entry = pathKey(ctx);
      const body = await jsonBody(ctx, 'activate-credential');
      if (body.credentialBlob === undefined) throw badRequest('field "credentialBlob" (base64 of TPM2B_ID_OBJECT\'s buffer) is required');
      if (body.secret === undefined) throw badRequest('field "secret" (base64 of TPM2B_ENCRYPTED_SECRET\'s buffer) is required');
      const credentialBlob = decodeBase64(body.credentialBlob, 'credentialBlob');
      const secret = decodeBase64(body.secret, 'secret');
      if (credentialBlob.length === 0 || secret.length === 0) throw badRequest('credentialBlob and secret must not be empty');
      reply(ctx.res, 'activate-credential', await d.attest.activateCredential(ctx.tenant, entry, credentialBlob, secret, ctx.signal));
    },

    'ek-public': async (ctx) => {
      const q = deviceRead(ctx, 'ek-public');
      reply(ctx.res, 'ek-public', await d.attest.ekPublic(ctx.tenant, parseEkType(q.type), ctx.signal));
    },

    'ek-certificate': async (ctx) => {
      const q = deviceRead(ctx, 'ek-certificate');
      reply(ctx.res, 'ek-certificate', await d.attest.ekCertificate(ctx.tenant, parseEkType(q.type), ctx.signal));
    },
  };
}
