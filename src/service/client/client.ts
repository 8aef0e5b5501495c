/**
 * ServiceClient: the container tools' way to the service, over any listener kind
 * (`unix:PATH`, `tcp:HOST:PORT`, `vsock:CID:PORT`). Small messages are signed inline (JSON),
 * large ones and streams are sent as a streamed application/octet-stream body, so memory does
 * not grow with the message. Failures throw ServiceError (the service answered) or
 * ServiceUnreachableError (it could not be reached).
 *
 * Connections are kept alive and reused between requests (one keep-alive Agent per client);
 * idle ones do not keep the process alive, and `close()` ends them at once.
 *
 * Self-contained (node:http and the small address/error modules) so it bundles into the tools.
 */
import { Agent, request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseAddress, type Address } from '../protocol/address.js';
import { isServiceErrorCode, ServiceError, ServiceUnreachableError } from '../protocol/errors.js';
import { handleText } from '../protocol/handles.js';
import type { AlgSpelling, AppBinding, CreateKeyRequest, Health, KeyInfo, KeySummary, SignAnswer, SignRequest } from '../protocol/messages.js';
import { MEDIA_JSON, MEDIA_STREAM, ROUTES, routeOf, targetOf, type Op, type ParamsOf, type QueryOf, type RequestOf, type ResponseOf } from '../protocol/routes.js';
import type { EccCurve, HashName, KeyKind, KeyScheme, KeyType, KeyUsage, PublicFormat, RsaBits, SignFormat } from '../protocol/vocabulary.js';
import { attestResult, badAnswer, bytes, hex, keyShape, object, pcrReadings, text, type AttestResult, type PcrReading } from './answers.js';

export { ServiceError, ServiceUnreachableError } from '../protocol/errors.js';
export { handleText } from '../protocol/handles.js';
export type { AppBinding, Health, KeyInfo, KeySummary } from '../protocol/messages.js';
export type { AttestResult, PcrReading } from './answers.js';

export type KeyTypeArg = AlgSpelling<KeyType>;
export type HashArg = AlgSpelling<HashName>;
export type HandleArg = number | string;

export interface ClientOptions {
  address: string;
  secret?: string;
  /** Connect timeout, and longest silence while waiting for an answer (default 60 s). */
  timeoutMs?: number;
}

/** A public key as the client returns it: der/tss bytes decoded. */
export interface PublicKey {
  handle: string;
  format: PublicFormat;
  pem?: string;
  /** der/tss bytes. */
  data?: Uint8Array;
}

export interface SignOptions {
  message: Uint8Array | NodeJS.ReadableStream;
  /** Byte length of a stream, when known (sent as Content-Length). */
  length?: number;
  hashAlg?: HashArg;
  /** plain (default), der or tss. */
  format?: SignFormat | (string & {});
  /** Streamed uploads: called with the bytes sent so far. */
  onProgress?: (bytesSent: number) => void;
}

/** POST /v1/keys: an AK (no kind, or kind ak) or a general key (issue 12); see CreateKeyRequest. */
export interface CreateKeyOptions {
  type: KeyTypeArg;
  hashAlg?: HashArg;
  kind?: KeyKind | (string & {});
  usage?: KeyUsage | (string & {});
  scheme?: KeyScheme | (string & {});
  bits?: RsaBits | number;
  curve?: EccCurve | (string & {});
}

/** Signing a digest the caller computed (general signing keys, as `tpm2_sign -d`). */
export interface SignDigestOptions {
  digest: Uint8Array;
  hashAlg?: HashArg;
  format?: SignFormat | (string & {});
}

/** A signature as the client returns it: the signature bytes decoded. */
export interface SignResult extends Omit<SignAnswer, 'signature'> {
  signature: Uint8Array;
}

/** A nonce: its bytes, or hex text as the tools take it. */
export type NonceArg = Uint8Array | string;

export interface PcrReadResult {
  /** The selection read, canonical (`sha1:0,1+sha256:0,1`). */
  selection: string;
  updateCounter: number;
  /** In selection order (pcrs.out's order). */
  pcrs: PcrReading[];
}

export interface QuoteResult extends AttestResult {
  selection: string;
  pcrs: PcrReading[];
}

export interface CertifyResult extends AttestResult {
  object: string;
  objectName: string;
}

export interface DeviceCertifyResult extends CertifyResult {
  binding: AppBinding;
  signerPem: string;
  signerName: string;
}

export interface EkPublicResult {
  type: KeyType;
  pem: string;
  /** hex */
  name: string;
  /** The marshalled TPM2B_PUBLIC. */
  public: Uint8Array;
}

export interface EkCertificateResult {
  type: KeyType;
  index: string;
  /** DER of the X.509 certificate. */
  der: Uint8Array;
}

const nonceHex = (n: NonceArg): string => (typeof n === 'string' ? n : Buffer.from(n.buffer, n.byteOffset, n.byteLength).toString('hex'));
const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

function keyType(op: string, o: Record<string, unknown>): KeyType {
  const t = o.type;
  if (t !== 'rsa' && t !== 'ecc') throw badAnswer(op, `has key type ${JSON.stringify(t)}`);
  return t;
}

/** Uint8Array messages up to this size are sent inline as JSON. */
export const INLINE_MAX = 64 * 1024;

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** Errors of a kept-alive connection that the service closed just before our request. */
const STALE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

class StaleConnection extends Error {
  constructor(readonly error: ServiceUnreachableError) {
    super(error.message);
  }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ETIMEDOUT', 'EACCES', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ENOTSOCK', 'EAI_AGAIN', 'ENOTFOUND']);

export class ServiceClient {
  private readonly address: Address;
  private readonly timeoutMs: number;
  private readonly agent: Agent;

  constructor(private readonly opts: ClientOptions) {
    this.address = parseAddress(opts.address, 'connect');
    if (this.address.kind === 'vsock' && this.address.cid === undefined) throw new TypeError('a vsock address needs a CID: vsock:CID:PORT');
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    // Idle sockets are unref'd by the Agent (a tool exits without close()), and closed a second
    // before the service's keep-alive timeout (it announces it in `Keep-Alive: timeout=N`).
    this.agent = new Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 4 });
    const a = this.address;
    if (a.kind === 'vsock') {
      const { cid, port } = a;
      const timeoutMs = this.timeoutMs;
      // The Agent makes its connections with createConnection (node:http's own createConnection
      // request option is ignored when there is an agent); it accepts one made asynchronously.
      (this.agent as unknown as { createConnection: (o: unknown, cb: (err: Error | null, s?: Duplex) => void) => undefined }).createConnection = (_o, cb) => {
        import('../vsock/index.js')
          .then((v) => v.connectVsock(cid!, port, { timeoutMs }))
          .then(
            (s) => cb(null, s),
            (e: Error) => cb(e),
          );
        return undefined;
      };
    }
  }

  /** Closes the kept-alive connections (and any in use); the client is not to be used after. */
  close(): void {
    this.agent.destroy();
  }

  health(): Promise<Health> {
    return this.request('health', {});
  }

  async createKey(opts: CreateKeyOptions): Promise<KeyInfo> {
    const body: CreateKeyRequest = { type: opts.type };
    // Only the members given: an older service refuses members it does not know.
    for (const k of ['hashAlg', 'kind', 'usage', 'scheme', 'bits', 'curve'] as const) if (opts[k] !== undefined) Object.assign(body, { [k]: opts[k] });
    return keyShape<KeyInfo>('create-key', await this.request('create-key', {}, { body }));
  }

  async listKeys(): Promise<KeySummary[]> {
    const keys: unknown = object('list-keys', await this.request('list-keys', {})).keys;
    if (!Array.isArray(keys)) throw badAnswer('list-keys', 'has no list of keys');
    return (keys as unknown[]).map((k) => keyShape<KeySummary>('list-keys', k));
  }

  async getKey(handle: HandleArg): Promise<KeyInfo> {
    return keyShape<KeyInfo>('get-key', await this.request('get-key', { handle: handleText(handle) }));
  }

  /** `format`: pem (default), der or tss; anything else is the service's 400. */
  async getPublic(handle: HandleArg, format: PublicFormat | (string & {}) = 'pem'): Promise<PublicKey> {
    const r = await this.request('get-public', { handle: handleText(handle) }, { query: { format } });
    const out: PublicKey = { handle: r.handle, format: r.format };
    if ('pem' in r && r.pem !== undefined) out.pem = r.pem;
    if ('data' in r && r.data !== undefined) out.data = new Uint8Array(Buffer.from(r.data, 'base64'));
    return out;
  }

  async sign(handle: HandleArg, opts: SignOptions): Promise<SignResult> {
    const params = { handle: handleText(handle) };
    let raw: SignAnswer;
    const m = opts.message;
    if (m instanceof Uint8Array && m.length <= INLINE_MAX) {
      const body: SignRequest = { message: Buffer.from(m.buffer, m.byteOffset, m.byteLength).toString('base64') };
      if (opts.hashAlg !== undefined) body.hashAlg = opts.hashAlg;
      if (opts.format !== undefined) body.format = opts.format;
      raw = await this.request('sign', params, { body });
      opts.onProgress?.(m.length);
    } else {
      const target = targetOf('sign', params, { hashAlg: opts.hashAlg, format: opts.format });
      raw = await this.streamed<SignAnswer>(target, m, opts.length ?? (m instanceof Uint8Array ? m.length : undefined), opts.onProgress);
    }
    return { ...raw, signature: new Uint8Array(Buffer.from(raw.signature, 'base64')) };
  }

  /** Signs a digest (general signing keys only; an AK's refusal is the service's 422). */
  async signDigest(handle: HandleArg, opts: SignDigestOptions): Promise<SignResult> {
    const body: SignRequest = { digest: b64(opts.digest) };
    if (opts.hashAlg !== undefined) body.hashAlg = opts.hashAlg;
    if (opts.format !== undefined) body.format = opts.format;
    const raw = await this.request('sign', { handle: handleText(handle) }, { body });
    return { ...raw, signature: bytes('sign', object('sign', raw), 'signature') };
  }

  /** RSA-OAEP decryption with a general decrypt key; `label` as tpm2_rsadecrypt -l. Resolves with the plaintext (may be empty). */
  async decrypt(handle: HandleArg, opts: { ciphertext: Uint8Array; label?: string }): Promise<Uint8Array> {
    const body = { ciphertext: b64(opts.ciphertext), ...(opts.label !== undefined ? { label: opts.label } : {}) };
    return bytes('decrypt', object('decrypt', await this.request('decrypt', { handle: handleText(handle) }, { body })), 'plaintext', true);
  }

  /** ECDH ZGen with a general ECC decrypt key and the peer's public key (PEM); resolves with Z. */
  async ecdh(handle: HandleArg, opts: { peer: string }): Promise<Uint8Array> {
    return bytes('ecdh', object('ecdh', await this.request('ecdh', { handle: handleText(handle) }, { body: { peer: opts.peer } })), 'z');
  }

  async deleteKey(handle: HandleArg): Promise<void> {
    await this.request('delete-key', { handle: handleText(handle) });
  }

  // ---- attestation (docs/API.md): bytes decoded and the answer checked against the contract

  /** `selection` as tpm2_pcrread takes it; default every allocated bank, PCRs 0–23. */
  async readPcrs(selection?: string): Promise<PcrReadResult> {
    const r = object('read-pcrs', await this.request('read-pcrs', {}, { query: selection === undefined ? {} : { selection } }));
    const updateCounter = r.updateCounter;
    if (typeof updateCounter !== 'number' || !Number.isInteger(updateCounter) || updateCounter < 0) throw badAnswer('read-pcrs', 'has no updateCounter');
    return { selection: text('read-pcrs', r, 'selection'), updateCounter, pcrs: pcrReadings('read-pcrs', r.pcrs) };
  }

  /** The key (an AK of the caller) quotes `pcrs` (`sha256:0,1,2`); `bind` binds the quote to the app. */
  async quote(handle: HandleArg, opts: { pcrs: string; nonce: NonceArg; bind?: boolean }): Promise<QuoteResult> {
    const body = { pcrs: opts.pcrs, nonce: nonceHex(opts.nonce), ...(opts.bind ? { bind: true } : {}) };
    const { raw, ...a } = attestResult('quote', await this.request('quote', { handle: handleText(handle) }, { body }));
    const pcrs = pcrReadings('quote', raw.pcrs);
    if (pcrs.length === 0) throw badAnswer('quote', 'has no PCR values');
    return { ...a, selection: text('quote', raw, 'selection'), pcrs };
  }

  /** `handle` (an AK of the caller) certifies `object` (another key of the caller). */
  async certify(handle: HandleArg, opts: { object: HandleArg; nonce: NonceArg; bind?: boolean }): Promise<CertifyResult> {
    const body = { object: handleText(opts.object), nonce: nonceHex(opts.nonce), ...(opts.bind ? { bind: true } : {}) };
    const { raw, ...a } = attestResult('certify', await this.request('certify', { handle: handleText(handle) }, { body }));
    return { ...a, object: text('certify', raw, 'object'), objectName: hex('certify', raw, 'objectName') };
  }

  /** The device's attestation key certifies `handle` (a key of the caller), bound to the app. */
  async deviceCertify(handle: HandleArg, opts: { nonce: NonceArg }): Promise<DeviceCertifyResult> {
    const op = 'device-certify';
    const { raw, binding, ...a } = attestResult(op, await this.request(op, { handle: handleText(handle) }, { body: { nonce: nonceHex(opts.nonce) } }), true);
    const signerPem = text(op, raw, 'signerPem');
    if (!signerPem.includes('-----BEGIN PUBLIC KEY-----')) throw badAnswer(op, 'has a signerPem that is not a PEM public key');
    return { ...a, binding: binding!, object: text(op, raw, 'object'), objectName: hex(op, raw, 'objectName'), signerPem, signerName: hex(op, raw, 'signerName') };
  }

  /** Activates the credential tpm2_makecredential made for `handle`; resolves with the secret. */
  async activateCredential(handle: HandleArg, cred: { credentialBlob: Uint8Array; secret: Uint8Array }): Promise<Uint8Array> {
    const op = 'activate-credential';
    const r = await this.request(op, { handle: handleText(handle) }, { body: { credentialBlob: b64(cred.credentialBlob), secret: b64(cred.secret) } });
    return bytes(op, object(op, r), 'secret');
  }

  /** The TCG EK (rsa by default). */
  async ekPublic(type?: KeyTypeArg): Promise<EkPublicResult> {
    const op = 'ek-public';
    const r = object(op, await this.request(op, {}, { query: type === undefined ? {} : { type: String(type) } }));
    const pem = text(op, r, 'pem');
    if (!pem.includes('-----BEGIN PUBLIC KEY-----')) throw badAnswer(op, 'has a pem that is not a PEM public key');
    return { type: keyType(op, r), pem, name: hex(op, r, 'name'), public: bytes(op, r, 'public') };
  }

  /** The EK's certificate from its NV index; an absent one is the service's NOT_FOUND. */
  async ekCertificate(type?: KeyTypeArg): Promise<EkCertificateResult> {
    const op = 'ek-certificate';
    const r = object(op, await this.request(op, {}, { query: type === undefined ? {} : { type: String(type) } }));
    const der = bytes(op, r, 'der');
    // An X.509 certificate is a DER SEQUENCE.
    if (der[0] !== 0x30) throw badAnswer(op, 'has a der that is not a DER certificate');
    return { type: keyType(op, r), index: text(op, r, 'index'), der };
  }

  /**
   * Any operation of the routes table (protocol/routes.ts) with a JSON body or none, answered
   * with the contract's type for it (bytes stay base64 text; a 204 gives undefined). The named
   * methods above are this plus argument checks and decoding.
   */
  async request<O extends Op>(op: O, params: ParamsOf<O>, opts: { query?: QueryOf<O>; body?: RequestOf<O> } = {}): Promise<ResponseOf<O>> {
    const r = routeOf(op);
    const text = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const a = await this.call(
      r.method,
      targetOf(op, params, opts.query),
      text === undefined ? undefined : { 'Content-Type': MEDIA_JSON, 'Content-Length': String(Buffer.byteLength(text)) },
      (req) => req.end(text),
      r.retry,
    );
    if (r.status === 204) return undefined as ResponseOf<O>;
    try {
      return JSON.parse(a.body.toString('utf8')) as ResponseOf<O>;
    } catch {
      throw new ServiceError(a.status, 'BAD_RESPONSE', `the service at ${this.opts.address} answered with something that is not JSON`);
    }
  }

  // -------------------------------------------------------------------------------------------

  private streamed<T>(path: string, message: Uint8Array | NodeJS.ReadableStream, length: number | undefined, onProgress?: (n: number) => void): Promise<T> {
    const headers: Record<string, string> = { 'Content-Type': MEDIA_STREAM };
    if (length !== undefined) headers['Content-Length'] = String(length);
    return this.call(ROUTES.sign.method, path, headers, (req) => {
      let sent = 0;
      const count = (n: number): void => {
        sent += n;
        onProgress?.(sent);
      };
      if (message instanceof Uint8Array) {
        // Written in pieces so progress is reported and the socket applies back-pressure.
        const piece = 64 * 1024;
        let off = 0;
        const pump = (): void => {
          while (off < message.length) {
            const chunk = message.subarray(off, Math.min(off + piece, message.length));
            off += chunk.length;
            const more = req.write(chunk, () => count(chunk.length));
            if (!more) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      } else {
        const src = message as NodeJS.ReadableStream & { destroy?: (e?: Error) => void };
        src.on('data', (c: Buffer | string) => {
          const b = typeof c === 'string' ? Buffer.from(c) : c;
          if (!req.write(b, () => count(b.length))) {
            src.pause();
            req.once('drain', () => src.resume());
          }
        });
        src.once('end', () => req.end());
        src.once('error', (e: Error) => req.destroy(e));
        // Answered before the whole message was sent (an error): stop reading the source.
        req.once('close', () => {
          src.removeAllListeners('data');
          if (!(src as { readableEnded?: boolean }).readableEnded) src.destroy?.();
        });
      }
    }).then((a) => JSON.parse(a.body.toString('utf8')) as T);
  }

  private connectionOptions(): RequestOptions {
    const a = this.address;
    // Plain HTTP has no TLS server name: given as none, node:http does not work one out (its
    // isIP check compiles a large regex, ~10-20 ms of a tool's start).
    const plain = { servername: '' } as RequestOptions;
    if (a.kind === 'unix') return { ...plain, socketPath: a.path };
    if (a.kind === 'tcp') return { ...plain, host: a.host, port: a.port };
    // vsock: the agent's createConnection dials; host only names the agent's connection pool.
    return { ...plain, host: 'localhost', port: a.port };
  }

  /**
   * One request; resolves on any 2xx, throws ServiceError on an error answer. `retry`: the
   * request may be sent again (once) when a kept-alive connection turns out to have been closed
   * by the service before it got the request (an idle timeout racing our request).
   */
  private call(method: string, path: string, headers: Record<string, string> | undefined, send: (req: ClientRequest) => void, retry = false): Promise<Answer> {
    return this.attempt(method, path, headers, send).catch((e: unknown) => {
      if (retry && e instanceof StaleConnection) return this.attempt(method, path, headers, send);
      throw e instanceof StaleConnection ? e.error : e;
    });
  }

  private attempt(method: string, path: string, headers: Record<string, string> | undefined, send: (req: ClientRequest) => void): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const h: Record<string, string> = { Accept: MEDIA_JSON, Connection: 'keep-alive', ...headers };
      if (this.opts.secret !== undefined) h.Authorization = `Bearer ${this.opts.secret}`;
      // Only requests with a body have headers here.
      const withBody = headers !== undefined;
      let answered = false;
      const req = request({ ...this.connectionOptions(), agent: this.agent, method, path, headers: h, timeout: this.timeoutMs }, (res) => {
        answered = true;
        const socket = res.socket;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', (e) => reject(this.unreachable(e)));
        res.once('end', () => {
          const body = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          // Not reused: a connection whose upload was answered before it was complete (the
          // rest is not sent), or whose request with a body got an error answer (the service
          // may not have read the whole body). Closing it is ours to do: were the service to
          // close first, while we are still uploading, we could see a broken pipe instead of
          // the answer. `Connection: close` from the service is handled by node:http.
          if (!req.writableFinished || (withBody && !ok)) socket?.destroy();
          if (ok) return resolve({ status, headers: res.headers, body });
          reject(this.errorFrom(status, res.headers, body));
        });
      });
      req.once('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.once('error', (e: Error & { code?: string }) => {
        if (answered) return;
        const u = this.unreachable(e);
        reject(req.reusedSocket && STALE.has(e.code ?? '') ? new StaleConnection(u) : u);
      });
      send(req);
    });
  }

  private errorFrom(status: number, headers: IncomingMessage['headers'], body: Buffer): ServiceError {
    const retry = Number(headers['retry-after']);
    const details = Number.isFinite(retry) && retry >= 0 ? { retryAfter: retry } : {};
    try {
      const e = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown; message?: unknown; tpmRc?: unknown; tpmText?: unknown } }).error;
      if (e && typeof e.code === 'string' && typeof e.message === 'string') {
        const sent = e.code;
        return new ServiceError(status, isServiceErrorCode(sent) ? sent : 'UNKNOWN_CODE', e.message, {
          ...details,
          ...(isServiceErrorCode(sent) ? {} : { sentCode: sent }),
          ...(typeof e.tpmRc === 'string' ? { tpmRc: e.tpmRc } : {}),
          ...(typeof e.tpmText === 'string' ? { tpmText: e.tpmText } : {}),
        });
      }
    } catch {
      // not JSON: fall through
    }
    // No error body of the service: something else answered (docs/API.md: every error has one).
    return new ServiceError(status, 'NOT_THE_SERVICE', `the service at ${this.opts.address} answered HTTP ${status}`, details);
  }

  private unreachable(e: Error & { code?: string }): ServiceUnreachableError {
    const code = e.code ?? (e.name === 'VsockUnavailableError' ? 'VSOCK_UNAVAILABLE' : 'EIO');
    const why =
      code === 'ECONNREFUSED'
        ? 'connection refused (is eve-tpm-service running?)'
        : code === 'ENOENT'
          ? 'no such socket'
          : code === 'ETIMEDOUT'
            ? `no answer within ${this.timeoutMs} ms`
            : UNREACHABLE.has(code)
              ? code
              : e.message;
    return new ServiceUnreachableError(this.opts.address, code, `cannot reach the TPM service at ${this.opts.address}: ${why}`, { cause: e });
  }
}
