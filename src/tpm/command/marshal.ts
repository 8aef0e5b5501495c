/**
 * One generic marshaller: builds any command frame from a descriptor, its input and the
 * authorizations, and decodes its response strictly. Commands with HMAC/policy session objects
 * (../session) go through prepareCommand, which hands them to the session path.
 */
import { TPM_HT, hex32 } from '../constants.js';
import { Writer } from '../wire/writer.js';
import { prepareSessionCommand } from '../session/prepare.js';
import type { SessionUse } from '../session/session.js';
import { handleOf, nameOf, type CommandDescriptor, type HandleArg, type CommandInput, type CommandOutput } from './descriptor.js';
import { cpHash, passwordAuth, sessionHmac, type AuthResponse, type Authorization } from './auth.js';
import { readResponse, writeCommand } from './layout.js';
import { borrowWriter, framesOf, ownedDecoderOf, returnWriter, stateOf } from './compiled.js';

/** The default authorization (empty password), shared: marshalCommand only reads it. */
const EMPTY_PASSWORD: Authorization = passwordAuth();

/** Marshals a complete command frame from a descriptor, its input and the authorizations. */
export function marshalCommand<C extends CommandDescriptor>(
  cmd: C,
  input: CommandInput<C>,
  auths: Partial<Record<string, Authorization>> = {},
  /** Names of the command's handles, needed only for sessions that compute an HMAC. */
  names: Partial<Record<string, Uint8Array>> = {},
): Uint8Array {
  const obj: Record<string, unknown> = input;
  const st = stateOf(cmd);
  const authNames = st.authNames;
  // An HMAC over cpHash (hmacFor) signs the parameters' bytes: then they are encoded first.
  // Else they go straight into the frame.
  let hmac = false;
  for (let i = 0; i < authNames.length; i++) if (auths[authNames[i]!]?.hmacFor) hmac = true;
  if (!hmac) {
    const encode = framesOf(cmd, st).command;
    if (encode !== undefined) {
      const w = borrowWriter();
      encode(w, obj, auths, authNames, authNames.length, EMPTY_PASSWORD);
      return returnWriter(w);
    }
    return writeCommand(cmd, obj, authNames.length, (i) => auths[authNames[i]!] ?? EMPTY_PASSWORD, (i) => label(authNames, i));
  }
  const pw = new Writer(256);
  cmd.params.encode(pw, obj);
  const paramBytes = pw.finish();
  const handleNames = cmd.handles.map((x) => {
    const arg = obj[x.name] as HandleArg;
    return names[x.name] ?? nameOf(arg) ?? defaultName(handleOf(arg), x.name, pw);
  });
  const entry = (i: number): Authorization => {
    const a = auths[authNames[i]!] ?? EMPTY_PASSWORD;
    if (!a.hmacFor) return a;
    const hmac = sessionHmac(a.hmacFor, cpHash(a.hmacFor.hashAlg, cmd.code, handleNames, paramBytes), a.nonceCaller, a.sessionAttributes);
    return { sessionHandle: a.sessionHandle, nonceCaller: a.nonceCaller, sessionAttributes: a.sessionAttributes, hmac };
  };
  return writeCommand(cmd, obj, authNames.length, entry, (i) => label(authNames, i), paramBytes);
}

const label = (authNames: readonly string[], i: number): string => `authorization(${authNames[i]!})`;

/**
 * The Name of a handle whose Name is the handle itself (Part 1 §16: PCRs, sessions,
 * permanent handles). Objects and NV indexes have digest Names the caller must supply.
 */
function defaultName(handle: number, what: string, w: Writer): Uint8Array {
  const ht = Math.floor(handle / 0x1000000);
  if (ht === TPM_HT.TRANSIENT || ht === TPM_HT.PERSISTENT || ht === TPM_HT.NV_INDEX) {
    w.fail(`the Name of ${what} (${hex32(handle)}) is needed to compute the session HMAC`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, handle);
  return out;
}

export interface DecodedResponse<C extends CommandDescriptor> {
  output: CommandOutput<C>;
  auths: AuthResponse[];
}

/** The response code of a response frame, or undefined if it is too short to have one. */
export function responseCode(response: Uint8Array): number | undefined {
  if (response.length < 10) return undefined;
  return new DataView(response.buffer, response.byteOffset, response.byteLength).getUint32(6);
}

/**
 * Decodes a response frame strictly: header size equal to the frame's length, tag matching
 * whether sessions were sent, parameters consumed exactly (parameterSize), one auth response
 * per session sent, nothing trailing. A non-zero response code throws TpmError.
 *
 * Byte fields are copies of the frame's bytes, unless `owned`: the caller owns `response` and
 * nobody writes to it afterwards; then they may be views into it (cheaper; they keep it alive).
 */
export function unmarshalResponse<C extends CommandDescriptor>(cmd: C, response: Uint8Array, sessionCount?: number, opts?: { owned?: boolean }): DecodedResponse<C> {
  const st = stateOf(cmd);
  const nSessions = sessionCount ?? st.authNames.length;
  const compiled = framesOf(cmd, st);
  const decode = opts?.owned === true ? ownedDecoderOf(cmd, st, compiled) : compiled.decodeResponse;
  if (decode !== undefined) return decode(response, nSessions) as DecodedResponse<C>;
  return readResponse(cmd, response, nSessions);
}

/** What authorizes one handle: a plain authorization, or a session object's use. */
export type AuthArg = Authorization | SessionUse;

/**
 * What a caller may pass for one command besides its input.
 * - `auth`: for each handle that needs authorization, by handle name, a plain authorization
 *   (password, policy) or a session object's use (`session.use(authValue)`, ../session);
 *   default: the empty password.
 * - `sessions`: sessions after the authorization sessions, used only for parameter encryption
 *   (Part 1 §21) — e.g. a salted session that encrypts a command under password authorization.
 */
export interface CallOptions {
  auth?: Partial<Record<string, AuthArg>>;
  sessions?: readonly SessionUse[];
}

/**
 * One command ready to send: its frame, and the decoder for its response, which knows what was
 * sent (the sessions' nonces, the parameters' bytes) so that response HMACs can be checked and
 * encrypted response parameters decrypted. The executor calls `decode` once per response.
 */
export interface PreparedCommand<C extends CommandDescriptor> {
  readonly request: Uint8Array;
  /** `owned`: as unmarshalResponse's (the executor's, when its Transport promises fresh responses). */
  decode(response: Uint8Array, owned?: boolean): DecodedResponse<C>;
}

function isPlain(auth: CallOptions['auth']): auth is Partial<Record<string, Authorization>> | undefined {
  if (auth === undefined) return true;
  for (const k in auth) if (auth[k] !== undefined && 'session' in auth[k]) return false;
  return true;
}

const OWNED = { owned: true };

/** Marshals a command for sending and returns how to decode its response. */
export function prepareCommand<C extends CommandDescriptor>(cmd: C, input: CommandInput<C>, opts: CallOptions = {}): PreparedCommand<C> {
  // The hot path (passwords, plain policy authorizations): no session state to keep.
  if ((opts.sessions === undefined || opts.sessions.length === 0) && isPlain(opts.auth)) {
    const request = marshalCommand(cmd, input, opts.auth);
    return { request, decode: (response, owned) => unmarshalResponse(cmd, response, undefined, owned === true ? OWNED : undefined) };
  }
  return prepareSessionCommand(cmd, input, opts.auth ?? {}, opts.sessions ?? []);
}
