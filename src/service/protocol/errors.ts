/**
 * The errors of the service API, shared by the server (which answers with them) and the client
 * (which throws them). No dependencies: the client is bundled into the container tools.
 */

/** The codes the service answers with: the stable error codes of docs/API.md. */
export const SERVICE_ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'QUOTA_EXCEEDED',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'REQUEST_TIMEOUT',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNSUPPORTED',
  'BUSY',
  'TPM_UNAVAILABLE',
  'TPM_ERROR',
  'DEADLINE',
  'INTERNAL',
] as const;

export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

/**
 * The codes the client makes itself, for answers that are not the service's: a 2xx whose body
 * is not JSON (BAD_RESPONSE), an error status without the service's error body, i.e. some other
 * peer answered (NOT_THE_SERVICE), and an error body whose code this client does not know, from
 * a newer service (UNKNOWN_CODE; the code as sent is kept in ServiceError.sentCode).
 */
export type ClientErrorCode = 'BAD_RESPONSE' | 'NOT_THE_SERVICE' | 'UNKNOWN_CODE';

/** Every code a ServiceError can carry: closed, so a switch over it is checked. */
export type ErrorCode = ServiceErrorCode | ClientErrorCode;

export function isServiceErrorCode(s: unknown): s is ServiceErrorCode {
  return typeof s === 'string' && (SERVICE_ERROR_CODES as readonly string[]).includes(s);
}

/** The error body of docs/API.md. */
export interface ErrorBody {
  error: { code: ServiceErrorCode; message: string; tpmRc?: string; tpmText?: string };
}

export interface ServiceErrorDetails {
  /** TPM response code as "0x%08x", when the TPM answered with an error. */
  tpmRc?: string;
  /** tpm2-tss's text for tpmRc, e.g. `tpm:parameter(1):structure is the wrong size`. */
  tpmText?: string;
  /** Seconds the caller should wait before retrying (429/503). */
  retryAfter?: number;
  /** 405: the methods the path takes, for the `Allow` header (never in the body). */
  allow?: string;
  /** What really happened, for the host log only (never sent: toJSON leaves it out). */
  cause?: unknown;
  /** UNKNOWN_CODE: the code the service sent. */
  sentCode?: string;
}

/** An error answer of the service: HTTP status, stable code, one human sentence. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  readonly tpmRc?: string;
  readonly tpmText?: string;
  readonly retryAfter?: number;
  readonly allow?: string;
  readonly sentCode?: string;

  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    details: ServiceErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.tpmRc !== undefined) this.tpmRc = details.tpmRc;
    if (details.tpmText !== undefined) this.tpmText = details.tpmText;
    if (details.retryAfter !== undefined) this.retryAfter = details.retryAfter;
    if (details.allow !== undefined) this.allow = details.allow;
    if (details.sentCode !== undefined) this.sentCode = details.sentCode;
  }

  /** The JSON body of docs/API.md. */
  toJSON(): { error: { code: string; message: string; tpmRc?: string; tpmText?: string } } {
    const error: { code: string; message: string; tpmRc?: string; tpmText?: string } = { code: this.sentCode ?? this.code, message: this.message };
    if (this.tpmRc !== undefined) error.tpmRc = this.tpmRc;
    if (this.tpmText !== undefined) error.tpmText = this.tpmText;
    return { error };
  }
}

/** The service could not be reached at all (refused, no such socket, timeout). */
export class ServiceUnreachableError extends Error {
  override readonly name = 'ServiceUnreachableError';
  constructor(
    readonly address: string,
    /** errno-style code when there is one (ECONNREFUSED, ENOENT, ETIMEDOUT, ...). */
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// Constructors for the errors the server raises, so that status and code never drift apart.
export const badRequest = (m: string): ServiceError => new ServiceError(400, 'BAD_REQUEST', m);
export const unauthenticated = (m = 'a valid tenant identity is required'): ServiceError => new ServiceError(401, 'UNAUTHENTICATED', m);
export const forbidden = (m: string): ServiceError => new ServiceError(403, 'FORBIDDEN', m);
export const quotaExceeded = (m: string): ServiceError => new ServiceError(403, 'QUOTA_EXCEEDED', m);
export const notFound = (m = 'no such endpoint'): ServiceError => new ServiceError(404, 'NOT_FOUND', m);
export const methodNotAllowed = (m: string, allow?: string): ServiceError => new ServiceError(405, 'METHOD_NOT_ALLOWED', m, allow === undefined ? {} : { allow });
export const requestTimeout = (m: string): ServiceError => new ServiceError(408, 'REQUEST_TIMEOUT', m);
export const conflict = (m: string): ServiceError => new ServiceError(409, 'CONFLICT', m);
export const payloadTooLarge = (m: string): ServiceError => new ServiceError(413, 'PAYLOAD_TOO_LARGE', m);
export const unsupportedMediaType = (m: string): ServiceError => new ServiceError(415, 'UNSUPPORTED_MEDIA_TYPE', m);
export const unsupported = (m: string): ServiceError => new ServiceError(422, 'UNSUPPORTED', m);
export const tenantBusy = (m: string): ServiceError => new ServiceError(429, 'BUSY', m, { retryAfter: 1 });
export const serviceBusy = (m: string): ServiceError => new ServiceError(503, 'BUSY', m, { retryAfter: 1 });
export const tpmUnavailable = (m: string): ServiceError => new ServiceError(503, 'TPM_UNAVAILABLE', m, { retryAfter: 2 });
export const tpmFailed = (m: string, d: ServiceErrorDetails = {}): ServiceError => new ServiceError(502, 'TPM_ERROR', m, d);
export const deadline = (m: string): ServiceError => new ServiceError(504, 'DEADLINE', m);
export const internal = (m = 'internal error'): ServiceError => new ServiceError(500, 'INTERNAL', m);
