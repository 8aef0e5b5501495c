/**
 * The routes of /v1, stated once: method, path, who may call, the success status, the query
 * parameters and body a route takes, and (in Contract) the types of its request and answer.
 * The server's router (http/router.ts) and handlers (http/api.ts), and the client's methods
 * (client/client.ts), are made from this table; docs/API.md describes it for people.
 * No dependencies beyond protocol/: the client is bundled into the container tools.
 */
import type {
  ActivateCredentialAnswer,
  ActivateCredentialRequest,
  Capabilities,
  CertifyAnswer,
  CertifyRequest,
  DeviceCertifyAnswer,
  DeviceCertifyRequest,
  EkCertificateAnswer,
  EkPublicAnswer,
  EkQuery,
  PcrReadAnswer,
  PcrReadQuery,
  QuoteAnswer,
  QuoteRequest,
  Usage,
  CreateKeyRequest,
  DecryptAnswer,
  DecryptRequest,
  EcdhAnswer,
  EcdhRequest,
  GetPublicQuery,
  Health,
  KeyInfo,
  KeyList,
  PublicKeyAnswer,
  SignAnswer,
  SignQuery,
  SignRequest,
} from './messages.js';
import { RAW_PATH } from './raw.js';

/** Per operation: its query parameters, its JSON request body (undefined: none) and its answer (undefined: 204). */
export interface Contract {
  health: { query: Record<never, never>; request: undefined; response: Health };
  capabilities: { query: Record<never, never>; request: undefined; response: Capabilities };
  'list-keys': { query: Record<never, never>; request: undefined; response: KeyList };
  'create-key': { query: Record<never, never>; request: CreateKeyRequest; response: KeyInfo };
  'get-key': { query: Record<never, never>; request: undefined; response: KeyInfo };
  'delete-key': { query: Record<never, never>; request: undefined; response: undefined };
  'get-public': { query: GetPublicQuery; request: undefined; response: PublicKeyAnswer };
  sign: { query: SignQuery; request: SignRequest; response: SignAnswer };
  decrypt: { query: Record<never, never>; request: DecryptRequest; response: DecryptAnswer };
  ecdh: { query: Record<never, never>; request: EcdhRequest; response: EcdhAnswer };
  'read-pcrs': { query: PcrReadQuery; request: undefined; response: PcrReadAnswer };
  quote: { query: Record<never, never>; request: QuoteRequest; response: QuoteAnswer };
  certify: { query: Record<never, never>; request: CertifyRequest; response: CertifyAnswer };
  'device-certify': { query: Record<never, never>; request: DeviceCertifyRequest; response: DeviceCertifyAnswer };
  'activate-credential': { query: Record<never, never>; request: ActivateCredentialRequest; response: ActivateCredentialAnswer };
  'ek-public': { query: EkQuery; request: undefined; response: EkPublicAnswer };
  'ek-certificate': { query: EkQuery; request: undefined; response: EkCertificateAnswer };
  usage: { query: Record<never, never>; request: undefined; response: Usage };
  /** The raw TPM channel (docs/API.md "Raw TPM channel"): an upgrade; TPM frames follow the 101, no JSON. */
  'raw-tpm': { query: Record<never, never>; request: undefined; response: undefined };
}

export type Op = keyof Contract;
export type QueryOf<O extends Op> = Contract[O]['query'];
export type RequestOf<O extends Op> = Contract[O]['request'];
export type ResponseOf<O extends Op> = Contract[O]['response'];

export type Method = 'GET' | 'POST' | 'DELETE';

/** The media types of bodies: JSON both ways; a streamed message to sign. */
export const MEDIA_JSON = 'application/json';
export const MEDIA_STREAM = 'application/octet-stream';

export interface RouteDef<O extends Op = Op> {
  readonly method: Method;
  /** Segments separated by "/"; `{name}` is a parameter (one non-empty segment). */
  readonly path: `/v1/${string}`;
  /** none: anyone who can connect; tenant: an identified tenant (docs/SERVICE.md, Security model). */
  readonly auth: 'none' | 'tenant';
  /** 101: the route is an upgrade (body `frames`), answered before routing (raw/channel.ts). */
  readonly status: 101 | 200 | 201 | 204;
  /** Query parameters the route takes (with a streamed body: its parameters). */
  readonly query: readonly (keyof QueryOf<O> & string)[];
  /**
   * none; json (fields: the body's allowed members); json-or-stream (sign: inline JSON or
   * application/octet-stream); frames (raw-tpm: TPM command frames after the upgrade, each
   * answered with a response frame).
   */
  readonly body: 'none' | 'json' | 'json-or-stream' | 'frames';
  readonly fields: readonly (keyof NonNullable<RequestOf<O>> & string)[];
  /** Safe for the client to send again on a kept-alive connection the service had just closed. */
  readonly retry: boolean;
  /**
   * The service configuration switch the route depends on (on by default): with it off the route
   * is left out of capabilities and answered 422. Absent: always offered.
   */
  readonly offeredWhen?: 'rawChannel';
}

/**
 * The table. Order matters only for the `Allow` header of a 405, which lists a path's methods
 * in this order.
 */
export const ROUTES = {
  health: { method: 'GET', path: '/v1/health', auth: 'none', status: 200, query: [], body: 'none', fields: [], retry: true },
  capabilities: { method: 'GET', path: '/v1/capabilities', auth: 'tenant', status: 200, query: [], body: 'none', fields: [], retry: true },
  'list-keys': { method: 'GET', path: '/v1/keys', auth: 'tenant', status: 200, query: [], body: 'none', fields: [], retry: true },
  'create-key': { method: 'POST', path: '/v1/keys', auth: 'tenant', status: 201, query: [], body: 'json', fields: ['type', 'hashAlg', 'kind', 'usage', 'scheme', 'bits', 'curve'], retry: false },
  'get-key': { method: 'GET', path: '/v1/keys/{handle}', auth: 'tenant', status: 200, query: [], body: 'none', fields: [], retry: true },
  'delete-key': { method: 'DELETE', path: '/v1/keys/{handle}', auth: 'tenant', status: 204, query: [], body: 'none', fields: [], retry: false },
  'get-public': { method: 'GET', path: '/v1/keys/{handle}/public', auth: 'tenant', status: 200, query: ['format'], body: 'none', fields: [], retry: true },
  sign: {
    method: 'POST',
    path: '/v1/keys/{handle}/sign',
    auth: 'tenant',
    status: 200,
    query: ['hashAlg', 'format'],
    body: 'json-or-stream',
    fields: ['message', 'digest', 'hashAlg', 'format'],
    retry: true,
  },
  decrypt: { method: 'POST', path: '/v1/keys/{handle}/decrypt', auth: 'tenant', status: 200, query: [], body: 'json', fields: ['ciphertext', 'label'], retry: true },
  ecdh: { method: 'POST', path: '/v1/keys/{handle}/ecdh', auth: 'tenant', status: 200, query: [], body: 'json', fields: ['peer'], retry: true },
  'read-pcrs': { method: 'GET', path: '/v1/pcrs', auth: 'tenant', status: 200, query: ['selection'], body: 'none', fields: [], retry: true },
  quote: { method: 'POST', path: '/v1/keys/{handle}/quote', auth: 'tenant', status: 200, query: [], body: 'json', fields: ['pcrs', 'nonce', 'bind'], retry: true },
  certify: { method: 'POST', path: '/v1/keys/{handle}/certify', auth: 'tenant', status: 200, query: [], body: 'json', fields: ['object', 'nonce', 'bind'], retry: true },
  'device-certify': { method: 'POST', path: '/v1/keys/{handle}/device-certify', auth: 'tenant', status: 200, query: [], body: 'json', fields: ['nonce'], retry: true },
  'activate-credential': {
    method: 'POST',
    path: '/v1/keys/{handle}/activate-credential',
    auth: 'tenant',
    status: 200,
    query: [],
    body: 'json',
    fields: ['credentialBlob', 'secret'],
    retry: true,
  },
  'ek-public': { method: 'GET', path: '/v1/ek', auth: 'tenant', status: 200, query: ['type'], body: 'none', fields: [], retry: true },
  'ek-certificate': { method: 'GET', path: '/v1/ek/certificate', auth: 'tenant', status: 200, query: ['type'], body: 'none', fields: [], retry: true },
  usage: { method: 'GET', path: '/v1/usage', auth: 'tenant', status: 200, query: [], body: 'none', fields: [], retry: true },
  // `Connection: Upgrade` + `Upgrade: tpm2-frames` (protocol/raw.ts); without them the route answers 400.
  'raw-tpm': { method: 'GET', path: RAW_PATH, auth: 'tenant', status: 101, query: [], body: 'frames', fields: [], retry: false, offeredWhen: 'rawChannel' },
} as const satisfies { readonly [O in Op]: RouteDef<O> };

export type RouteOf<O extends Op> = (typeof ROUTES)[O];

/** A route with its query and body members as plain names: what generic code (router, client) reads. */
export type RouteInfo = Omit<RouteDef, 'query' | 'fields'> & { readonly query: readonly string[]; readonly fields: readonly string[] };

export function routeOf(op: Op): RouteInfo {
  return ROUTES[op];
}

/** The `{name}`s of a path. */
type ParamNames<P extends string> = P extends `${string}{${infer N}}${infer R}` ? N | ParamNames<R> : never;

/** Path parameters of an operation, e.g. { handle: string } for get-key. */
export type ParamsOf<O extends Op> = { readonly [K in ParamNames<RouteOf<O>['path']>]: string };

/** The operations, in table order. */
export const OPS = Object.keys(ROUTES) as Op[];

/** Whether a service with these switches offers the operation (`offeredWhen`; a switch left out is on). */
export function offered(op: Op, switches: { readonly rawChannel?: boolean }): boolean {
  const when = routeOf(op).offeredWhen;
  return when === undefined || switches[when] !== false;
}

/**
 * The request target of an operation: parameters put into the path (the caller gives them in
 * canonical form: they are segments, not encoded), query values percent-encoded, undefined
 * ones left out.
 */
export function targetOf<O extends Op>(op: O, params: ParamsOf<O>, query: { readonly [K in keyof QueryOf<O>]?: string | number | undefined } = {}): string {
  const path = ROUTES[op].path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = (params as Readonly<Record<string, string>>)[name];
    if (v === undefined) throw new TypeError(`${op}: parameter ${name} is missing`);
    return v;
  });
  const q = Object.entries(query as Record<string, string | number | undefined>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return q === '' ? path : `${path}?${q}`;
}
