/**
 * The part of the service client the tools use — the ServiceClient's own methods and types, so
 * the contract is not restated here — and the translation of its failures into one clear line
 * and an exit code. Failures are recognised by shape, so unit tests can throw fakes.
 */
import type { ClientOptions, ServiceClient } from '../service/client/client.js';
import { CliError, EXIT, type ExitCode } from './errors.js';
import type { ServiceSettings } from './config.js';

export type { ClientOptions, KeyInfo, KeySummary, PublicKey, SignResult } from '../service/client/client.js';

/** The client's methods the tools use: the real ServiceClient, or a fake in unit tests. */
export type ClientLike = Pick<
  ServiceClient,
  | 'createKey'
  | 'listKeys'
  | 'getKey'
  | 'getPublic'
  | 'sign'
  | 'signDigest'
  | 'decrypt'
  | 'ecdh'
  | 'deleteKey'
  | 'request'
  | 'readPcrs'
  | 'quote'
  | 'certify'
  | 'deviceCertify'
  | 'activateCredential'
  | 'ekPublic'
  | 'ekCertificate'
> & {
  close?(): void | Promise<void>;
};

export type ClientFactory = (opts: ClientOptions) => ClientLike | Promise<ClientLike>;

/** What the request was about, to name it in messages. */
export interface ErrorContext {
  settings: ServiceSettings;
  handle?: string;
}

interface ServiceErrorLike {
  status: number;
  code: string;
  /** The client's UNKNOWN_CODE: the code the service sent. */
  sentCode?: string;
  message: string;
  tpmRc?: string | number;
  tpmText?: string;
  retryAfter?: number | string;
}

function isServiceError(e: unknown): e is ServiceErrorLike {
  const o = e as Partial<ServiceErrorLike> | null;
  return !!o && typeof o === 'object' && typeof o.status === 'number' && typeof o.code === 'string';
}

function isUnreachable(e: unknown): boolean {
  const n = (e as Error | null)?.name;
  return n === 'ServiceUnreachableError';
}

function isTimeout(e: unknown): boolean {
  const o = e as { name?: string; code?: string } | null;
  return (
    !!o &&
    (o.name === 'TimeoutError' || o.name === 'ServiceTimeoutError' || o.code === 'ETIMEDOUT' || o.code === 'TIMEOUT' || o.code === 'ABORT_ERR')
  );
}

/** The service's message without a trailing period, so it reads well after a colon. */
const clean = (s: string): string => s.trim().replace(/\.$/, '');

function tpmRcText(rc: string | number | undefined): string | undefined {
  if (rc === undefined) return undefined;
  if (typeof rc === 'number') return `0x${rc.toString(16).padStart(8, '0')}`;
  return rc;
}

function secretHint(settings: ServiceSettings): string {
  return settings.secret === undefined
    ? 'no secret is configured (use --secret-file, EVE_TOOLS_SECRET or the config file)'
    : `the secret came from ${settings.secretSource}`;
}

/** Turns anything the client throws into a CliError. CliErrors pass through. */
export function toCliError(e: unknown, ctx: ErrorContext): CliError {
  if (e instanceof CliError) return e;
  const where = `${ctx.settings.address}${ctx.settings.addressSource === 'default' ? '' : ` (from ${sourceText(ctx.settings)})`}`;
  if (isUnreachable(e)) {
    const u = e as Error & { reason?: string };
    // The client's message already says "cannot reach the TPM service at ADDR: why"; keep the why.
    const why = clean((u.message || 'no answer').replace(/^cannot reach the TPM service at \S+: /, ''));
    if (u.reason === 'ETIMEDOUT') {
      return new CliError(`timed out waiting for the TPM service at ${where}: ${why}`, EXIT.TIMEOUT, 'TIMEOUT');
    }
    const plain = unreachableWords(u.reason ?? '', where);
    if (plain !== undefined) return new CliError(plain, EXIT.UNREACHABLE, 'UNREACHABLE', { reason: u.reason });
    return new CliError(`cannot reach the TPM service at ${where}: ${why}`, EXIT.UNREACHABLE, 'UNREACHABLE', u.reason ? { reason: u.reason } : {});
  }
  if (isServiceError(e) && e.code === 'NOT_THE_SERVICE') {
    // The client's code for an answer with no JSON error body: eve-tpm-service always sends one.
    return new CliError(
      `the peer at ${where} answered HTTP ${e.status}, but not as the TPM service does: is this the eve-tpm-service address?`,
      EXIT.UNREACHABLE,
      'NOT_THE_SERVICE',
      { status: e.status },
    );
  }
  if (isServiceError(e)) return fromServiceError(e, ctx);
  if (isTimeout(e)) {
    return new CliError(`timed out waiting for the TPM service at ${where}`, EXIT.TIMEOUT, 'TIMEOUT');
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new CliError(`unexpected error: ${msg}`, EXIT.GENERAL, 'INTERNAL');
}

/** Failures to reach the service that its errno code alone would leave cryptic (EACCES, HPE_*). */
function unreachableWords(reason: string, where: string): string | undefined {
  if (reason === 'EACCES' || reason === 'EPERM') {
    return `permission denied connecting to the TPM service at ${where}: this user may not open it (run as a user allowed to, or check --service)`;
  }
  // node:http's parser codes: something answered, but not in HTTP.
  if (reason.startsWith('HPE_')) {
    return `the peer at ${where} answered, but not in HTTP: it is not eve-tpm-service (wrong address or port?)`;
  }
  if (reason === 'ECONNRESET' || reason === 'EPIPE') {
    return `the peer at ${where} closed the connection without answering: it is not eve-tpm-service, or the service is restarting`;
  }
  return undefined;
}

function sourceText(s: ServiceSettings): string {
  switch (s.addressSource) {
    case 'flag':
      return '--service';
    case 'env':
      return 'EVE_TOOLS_SERVICE';
    case 'config':
      return 'the config file';
    default:
      return 'the default';
  }
}

function fromServiceError(e: ServiceErrorLike, ctx: ErrorContext): CliError {
  // A code this client does not know (a newer service) is shown as the service sent it.
  const code = e.sentCode ?? e.code;
  const msg = clean(e.message || code);
  const details: Record<string, unknown> = { status: e.status, code };
  const mk = (text: string, exit: ExitCode): CliError => new CliError(text, exit, code, details);
  const key = ctx.handle ? `key ${ctx.handle}` : 'the key';
  switch (code) {
    case 'BAD_REQUEST':
      return mk(`the service rejected the request: ${msg}`, EXIT.USAGE);
    case 'UNAUTHENTICATED':
      return mk(`the TPM service did not accept this application's identity: ${msg}; ${secretHint(ctx.settings)}`, EXIT.AUTH);
    case 'FORBIDDEN':
      // The service gives the same answer for another app's key, EVE's, a reserved or a free
      // handle (so nothing leaks); the line says what it means for this app.
      details.serviceMessage = e.message;
      return mk(
        ctx.handle ? `${key} is not yours: only keys this application created can be used` : `the TPM service refused the request: ${msg}`,
        EXIT.AUTH,
      );
    case 'QUOTA_EXCEEDED':
      return mk(`key quota reached: ${msg}; delete a key with eve_tools_tpm2_evictaik first`, EXIT.CONFLICT);
    case 'CONFLICT':
      return mk(`${msg}`, EXIT.CONFLICT);
    case 'UNSUPPORTED':
      return mk(`not supported: ${msg}`, EXIT.UNSUPPORTED);
    case 'PAYLOAD_TOO_LARGE':
      return mk(`too large for the TPM service: ${msg}`, EXIT.UNSUPPORTED);
    case 'BUSY': {
      const ra = e.retryAfter !== undefined ? ` (retry after ${e.retryAfter} s)` : '';
      return mk(`the TPM service is busy${ra}: ${msg}`, EXIT.BUSY);
    }
    case 'TPM_UNAVAILABLE':
      return mk(`the TPM service cannot reach its TPM: ${msg}`, EXIT.TPM);
    case 'TPM_ERROR': {
      details.tpmRc = tpmRcText(e.tpmRc);
      if (e.tpmText) details.tpmText = e.tpmText;
      const rc = tpmRcText(e.tpmRc);
      // tpm2-tss's text is what people search for; the service's sentence is the fallback.
      const what = e.tpmText ?? msg;
      return mk(`TPM error: ${what}${rc ? ` (rc ${rc})` : ''}`, EXIT.TPM);
    }
    case 'DEADLINE':
    case 'REQUEST_TIMEOUT':
      return mk(`timed out: ${msg}`, EXIT.TIMEOUT);
    case 'NOT_FOUND':
    case 'METHOD_NOT_ALLOWED':
    case 'UNSUPPORTED_MEDIA_TYPE':
      return mk(`the TPM service does not understand this request (different version?): ${msg}`, EXIT.GENERAL);
    case 'INTERNAL':
      return mk(`the TPM service failed: ${msg}`, EXIT.GENERAL);
    case 'BAD_RESPONSE':
      return mk(msg, EXIT.GENERAL);
    default:
      break;
  }
  // Unknown code: fall back on the status class.
  if (e.status === 401 || e.status === 403) return mk(`access denied by the TPM service: ${msg}`, EXIT.AUTH);
  if (e.status === 429 || e.status === 503) return mk(`the TPM service is busy: ${msg}`, EXIT.BUSY);
  if (e.status === 504) return mk(`timed out: ${msg}`, EXIT.TIMEOUT);
  if (e.status === 502) return mk(`TPM error: ${msg}`, EXIT.TPM);
  if (e.status === 422) return mk(`not supported: ${msg}`, EXIT.UNSUPPORTED);
  if (e.status === 409) return mk(msg, EXIT.CONFLICT);
  if (e.status >= 400 && e.status < 500) return mk(`the service rejected the request: ${msg}`, EXIT.USAGE);
  return mk(`the TPM service failed (HTTP ${e.status} ${code}): ${msg}`, EXIT.GENERAL);
}
