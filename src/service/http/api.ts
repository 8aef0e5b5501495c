/**
 * The endpoints of docs/API.md. Each handler parses its input strictly, asks the policy, logs
 * the decision to the audit log, and only then lets the key manager near the TPM.
 */
import { TPM_ALG, publicToSpkiDer } from '../../tpm/index.js';
import { badRequest, quotaExceeded, conflict, payloadTooLarge } from '../protocol/errors.js';
import { formatHandle, parseHandle } from '../protocol/handles.js';
import type { KeySummary } from '../protocol/messages.js';
import { OPS, ROUTES, offered, targetOf, type Op } from '../protocol/routes.js';
import { KEY_ALG, PUBLIC_FORMATS, SIGN_FORMATS, type KeyType } from '../protocol/vocabulary.js';
import { bodyPieces, expectNoBody, mediaType } from './body.js';
import { parseQuery } from './query.js';
import { decodeBase64 } from './strict-json.js';
import { parseHashAlg, parseKeyType, parsePublicFormat, parseSignFormat, type HashName, type SignFormat } from '../protocol/params.js';
import { keyShape, type KeyEntry } from '../keys/registry.js';
import type { SignResult } from '../keys/keys.js';
import { parseGeneralShape } from '../keys/general-shape.js';
import { attestHandlers } from './attest-api.js';
import { usageHandlers } from './usage-api.js';
import { appKeyHandlers } from './appkeys-api.js';
import { rawHandlers } from './raw-api.js';
import { jsonBody, ownKey, reply, type ApiDeps, type Handlers, type OpenContext, type RequestContext } from './handler.js';

export type { ApiDeps, Handlers, OpenContext, RequestContext } from './handler.js';

const SIG_ALG_NAMES: Readonly<Record<number, string>> = {
  [TPM_ALG.RSASSA]: 'rsassa',
  [TPM_ALG.RSAPSS]: 'rsapss',
  [TPM_ALG.ECDSA]: 'ecdsa',
  [TPM_ALG.ECDAA]: 'ecdaa',
  [TPM_ALG.SM2]: 'sm2',
  [TPM_ALG.ECSCHNORR]: 'ecschnorr',
};

function keySummary(e: KeyEntry): KeySummary {
  return { handle: formatHandle(e.handle), type: e.type, hashAlg: e.hashAlg, ...keyShape(e), name: e.name, createdAt: e.createdAt };
}

export class Api {
  /** Bound to the routes table: a route without a handler here does not compile. */
  readonly handlers: Handlers;

  constructor(private readonly d: ApiDeps) {
    this.handlers = this.handlersFor(d);
  }

  private handlersFor(d: ApiDeps): Handlers {
    return {
      health: (ctx) => this.health(ctx),
      capabilities: (ctx) => this.capabilities(ctx),
      'list-keys': (ctx) => this.listKeys(ctx),
      'create-key': (ctx) => this.createKey(ctx),
      'get-key': (ctx) => this.getKey(ctx),
      'delete-key': (ctx) => this.deleteKey(ctx),
      'get-public': (ctx) => this.getPublic(ctx),
      sign: (ctx) => this.sign(ctx),
      ...attestHandlers(d),
      ...usageHandlers(d),
      ...appKeyHandlers(d),
      ...rawHandlers(offered('raw-tpm', d.config)),
    };
  }

  private health(ctx: OpenContext): void {
    parseQuery(ctx.query, ROUTES.health.query);
    expectNoBody(ctx.req);
    reply(ctx.res, 'health', this.d.health());
  }

  /**
   * What the caller may do: every operation (no per-tenant policy limits them yet), the
   * vocabulary, the hashes this TPM implements (asked once, hash-algs.ts), its key quota.
   */
  private async capabilities(ctx: RequestContext): Promise<void> {
    parseQuery(ctx.query, ROUTES.capabilities.query);
    expectNoBody(ctx.req);
    ctx.audit('grant', 'own capabilities only');
    const { hashAlgs, hashAlgsFrom } = await this.d.hashAlgs.list(ctx.tenant.id);
    // Counted as create-key counts against the quota: keys being created or deleted included.
    const used = this.d.registry.ofTenant(ctx.tenant).length;
    reply(ctx.res, 'capabilities', {
      tenant: ctx.tenant.id,
      operations: OPS.filter((op) => offered(op, this.d.config)).map((op) => ({ op, method: ROUTES[op].method, path: ROUTES[op].path })),
      keyTypes: Object.keys(KEY_ALG) as KeyType[],
      hashAlgs,
      hashAlgsFrom,
      signFormats: [...SIGN_FORMATS],
      publicFormats: [...PUBLIC_FORMATS],
      quota: { keys: { max: ctx.tenant.maxKeys, used, left: Math.max(0, ctx.tenant.maxKeys - used) } },
    });
  }

  /** Path handle → the caller's committed key, or a 400/403/409 (audited either way). */
  private ownKey(ctx: RequestContext): KeyEntry {
    const handle = parseHandle(ctx.route.params.handle);
    ctx.handle = handle;
    return ownKey(this.d, ctx, handle);
  }

  private jsonBody(ctx: RequestContext, op: Op): Promise<Record<string, unknown>> {
    return jsonBody(this.d, ctx, op);
  }

  private async createKey(ctx: RequestContext): Promise<void> {
    parseQuery(ctx.query, ROUTES['create-key'].query);
    if (mediaType(ctx.req) !== 'json') throw badRequest('creating a key takes a JSON body { "type": "rsa" | "ecc" }');
    const body = await this.jsonBody(ctx, 'create-key');
    if (body.type === undefined) throw badRequest('field "type" is required (rsa or ecc)');
    const type = parseKeyType(body.type);
    const hashAlg = body.hashAlg === undefined ? 'sha256' : parseHashAlg(body.hashAlg);
    const general = parseGeneralShape(body, type);
    const have = this.d.registry.ofTenant(ctx.tenant).length;
    if (have >= ctx.tenant.maxKeys) {
      ctx.audit('deny', `quota of ${ctx.tenant.maxKeys} keys reached`);
      throw quotaExceeded(`you already have ${have} key(s); your quota is ${ctx.tenant.maxKeys}`);
    }
    ctx.audit('grant', 'within quota');
    const { entry, pem } = await this.d.keys.create(ctx.tenant, type, hashAlg, ctx.signal, general);
    ctx.handle = entry.handle;
    reply(ctx.res, 'create-key', { ...keySummary(entry), pem }, { Location: targetOf('get-key', { handle: formatHandle(entry.handle) }) });
  }

  private listKeys(ctx: RequestContext): void {
    parseQuery(ctx.query, ROUTES['list-keys'].query);
    expectNoBody(ctx.req);
    ctx.audit('grant', 'own keys only');
    const keys = this.d.registry.ofTenant(ctx.tenant).filter((e) => e.state === 'committed').map(keySummary);
    reply(ctx.res, 'list-keys', { keys });
  }

  private getKey(ctx: RequestContext): void {
    parseQuery(ctx.query, ROUTES['get-key'].query);
    expectNoBody(ctx.req);
    const entry = this.ownKey(ctx);
    const pem = this.d.keys.pem(entry);
    if (pem === undefined) throw conflict(`the public part of ${formatHandle(entry.handle)} is missing on the host`);
    reply(ctx.res, 'get-key', { ...keySummary(entry), pem });
  }

  private getPublic(ctx: RequestContext): void {
    const q = parseQuery(ctx.query, ROUTES['get-public'].query);
    expectNoBody(ctx.req);
    const format = q.format === undefined ? 'pem' : parsePublicFormat(q.format);
    const entry = this.ownKey(ctx);
    const blobs = this.d.keys.blobsOf(entry);
    if (!blobs) throw conflict(`the public part of ${formatHandle(entry.handle)} is missing on the host`);
    const handle = formatHandle(entry.handle);
    if (format === 'pem') return reply(ctx.res, 'get-public', { handle, format, pem: this.d.keys.pem(entry)! });
    // tss: TPM2B_PUBLIC as tpm2_readpublic -o writes it; der: SubjectPublicKeyInfo.
    const data = format === 'tss' ? blobs.public : publicToSpkiDer(blobs.publicArea);
    reply(ctx.res, 'get-public', { handle, format, data: Buffer.from(data).toString('base64') });
  }

  private async sign(ctx: RequestContext): Promise<void> {
    const kind = mediaType(ctx.req);
    const entry = this.ownKey(ctx);
    this.d.keyHealth?.check(entry); // before the body: a lost key is not worth a message upload
    let message: Uint8Array | AsyncIterable<Uint8Array>;
    let hashAlg: HashName;
    let format: SignFormat;
    if (kind === 'json') {
      parseQuery(ctx.query, []); // parameters live in the body; two places would be ambiguous
      const body = await this.jsonBody(ctx, 'sign');
      if (body.message !== undefined && body.digest !== undefined) throw badRequest('send "message" or "digest", not both');
      if (body.digest !== undefined) {
        // A digest the caller computed (as tpm2_sign -d): general signing keys only (keys/general-ops.ts).
        const digest = decodeBase64(body.digest, 'digest');
        const h = body.hashAlg === undefined ? entry.hashAlg : parseHashAlg(body.hashAlg);
        const f = body.format === undefined ? 'plain' : parseSignFormat(body.format);
        const r = await this.d.appKeys.signDigest(ctx.tenant, entry, digest, h, f, ctx.signal).catch((e: unknown) => {
          throw this.d.keyHealth ? this.d.keyHealth.explain(entry, e) : e;
        });
        const sigAlg = SIG_ALG_NAMES[r.sig.sigAlg] ?? `0x${r.sig.sigAlg.toString(16)}`;
        const signature = Buffer.from(r.signature).toString('base64');
        return reply(ctx.res, 'sign', { handle: formatHandle(entry.handle), sigAlg, hashAlg: h, format: f, signature, digest: Buffer.from(r.digest).toString('hex'), messageLength: 0 });
      }
      if (body.message === undefined) throw badRequest('field "message" (base64) is required, or "digest" (base64) for a general signing key');
      message = decodeBase64(body.message, 'message');
      if (message.length > this.d.config.maxInlineMessageBytes) {
        throw payloadTooLarge(`an inline message may be at most ${this.d.config.maxInlineMessageBytes} bytes; stream larger ones as application/octet-stream`);
      }
      hashAlg = body.hashAlg === undefined ? entry.hashAlg : parseHashAlg(body.hashAlg);
      format = body.format === undefined ? 'plain' : parseSignFormat(body.format);
    } else if (kind === 'octet-stream') {
      const q = parseQuery(ctx.query, ROUTES.sign.query);
      hashAlg = q.hashAlg === undefined ? entry.hashAlg : parseHashAlg(q.hashAlg);
      format = q.format === undefined ? 'plain' : parseSignFormat(q.format);
      message = bodyPieces(ctx.req, {
        maxBytes: this.d.config.maxStreamBytes,
        idleMs: this.d.config.bodyTimeoutMs,
        minBytesPerSec: this.d.config.minBodyBytesPerSec,
        rateGraceMs: this.d.config.bodyRateGraceMs,
        signal: ctx.signal,
      });
    } else {
      throw badRequest('signing takes a JSON body { "message": "<base64>" } or an application/octet-stream body');
    }
    let r: SignResult;
    try {
      r = await this.d.keys.sign(ctx.tenant, entry, { message, hashAlg, format, signal: ctx.signal });
    } catch (e) {
      throw this.d.keyHealth ? this.d.keyHealth.explain(entry, e) : e;
    }
    reply(ctx.res, 'sign', {
      handle: formatHandle(entry.handle),
      sigAlg: SIG_ALG_NAMES[r.sig.sigAlg] ?? `0x${r.sig.sigAlg.toString(16)}`,
      hashAlg,
      format,
      signature: Buffer.from(r.signature).toString('base64'),
      digest: Buffer.from(r.digest).toString('hex'),
      messageLength: r.messageLength,
    });
  }

  private async deleteKey(ctx: RequestContext): Promise<void> {
    parseQuery(ctx.query, ROUTES['delete-key'].query);
    expectNoBody(ctx.req);
    const entry = this.ownKey(ctx);
    await this.d.keys.remove(ctx.tenant, entry);
    reply(ctx.res, 'delete-key', undefined);
  }
}
