/**
 * Commands as data (TPM 2.0 Part 1 §18 "Command/Response Structure"; Part 3 for each command).
 * A descriptor lists the command code, its handles (each marked as needing authorization or
 * not), a parameter codec, the response handles and a response-parameter codec. One generic
 * marshaller builds any command frame from a descriptor and decodes its response strictly.
 */
import { createHash, createHmac } from 'node:crypto';
import { NODE_HASH, TPM_HT, TPM_RH, TPM_ST, TPMA_SESSION, hex32 } from './constants.js';
import { TpmEncodeError } from './wire/errors.js';
import { TPM2B_AUTH, TPM2B_NONCE } from './structures.js';
import { Reader } from './wire/reader.js';
import { Writer } from './wire/writer.js';
import { struct, type Codec, type Infer } from './wire/codec.js';
import { TpmError } from './rc.js';

/** Whether a command handle is authorized by a session (Part 3 "Auth Index"/"Auth Role"). */
export type HandleAuth = 'auth' | 'noauth';

export interface CommandDescriptor<
  H extends string = string,
  P extends Record<string, unknown> = Record<string, unknown>,
  RH extends string = string,
  R extends Record<string, unknown> = Record<string, unknown>,
> {
  readonly name: string;
  readonly code: number;
  /** Where the command is specified, e.g. "Part 3 §20.2". */
  readonly spec: string;
  readonly handles: readonly { readonly name: H; readonly auth: HandleAuth }[];
  readonly params: Codec<P>;
  readonly responseHandles: readonly RH[];
  readonly response: Codec<R>;
}

/** What a caller passes to run a command: its handles by name plus its parameters. */
export type CommandInput<C> = C extends CommandDescriptor<infer H, infer P, any, any> ? { [K in H]: number } & P : never;
/** What running a command returns: its response handles by name plus response parameters. */
export type CommandOutput<C> = C extends CommandDescriptor<any, any, infer RH, infer R> ? { [K in RH]: number } & R : never;
/** Handle names that need authorization. */
export type AuthHandleName<C> = C extends CommandDescriptor<infer H, any, any, any> ? H : never;

type Fields = Record<string, Codec<any>>;

/** Defines a command descriptor; `params`/`response` are field lists in wire order. */
export function command<H extends string = never, PF extends Fields = Fields, RH extends string = never, RF extends Fields = Fields>(def: {
  name: string;
  code: number;
  spec: string;
  handles?: { [K in H]: HandleAuth };
  params: PF;
  responseHandles?: readonly RH[];
  response: RF;
}): CommandDescriptor<H, { [K in keyof PF]: Infer<PF[K]> }, RH, { [K in keyof RF]: Infer<RF[K]> }> {
  const handles = Object.entries(def.handles ?? {}).map(([name, auth]) => ({ name: name as H, auth: auth as HandleAuth }));
  return {
    name: def.name,
    code: def.code,
    spec: def.spec,
    handles,
    params: struct(`${def.name}.parameters`, def.params) as any,
    responseHandles: def.responseHandles ?? [],
    response: struct(`${def.name}.response`, def.response) as any,
  };
}

/**
 * One entry of a command's authorization area (Part 1 §18.6, TPMS_AUTH_COMMAND).
 * A password session is TPM_RS_PW with the password as hmac; a policy session is the
 * session's handle with a fresh nonceCaller and an empty hmac (no PolicyAuthValue here).
 */
export interface Authorization {
  sessionHandle: number;
  nonceCaller: Uint8Array;
  sessionAttributes: number;
  hmac: Uint8Array;
  /** When set, `hmac` is computed over the command (cpHash) instead of taken as is. */
  hmacFor?: SessionHmac;
}

/** What a session HMAC needs (Part 1 §19.6): for an unbound, unsalted session the key is empty. */
export interface SessionHmac {
  hashAlg: number;
  /** The TPM's latest nonce for this session (nonceOlder). */
  nonceTPM: Uint8Array;
  sessionKey?: Uint8Array;
  authValue?: Uint8Array;
}

/** The password session TPM_RS_PW with the given (default empty) password. */
export function passwordAuth(password: Uint8Array = new Uint8Array(0)): Authorization {
  return { sessionHandle: TPM_RH.RS_PW, nonceCaller: new Uint8Array(0), sessionAttributes: 0, hmac: password };
}

/**
 * A policy session's authorization. continueSession is set so the caller stays in charge of
 * flushing it (the TPM would otherwise flush it only when the command succeeds).
 */
export function policyAuth(
  sessionHandle: number,
  nonceCaller: Uint8Array,
  opts: { continueSession?: boolean; hmacFor?: SessionHmac } = {},
): Authorization {
  return {
    sessionHandle,
    nonceCaller,
    sessionAttributes: opts.continueSession === false ? 0 : TPMA_SESSION.continueSession,
    hmac: new Uint8Array(0),
    ...(opts.hmacFor ? { hmacFor: opts.hmacFor } : {}),
  };
}

/** The default authorization (empty password), shared: marshalCommand only reads it. */
const EMPTY_PASSWORD: Authorization = passwordAuth();

/** TPMS_AUTH_RESPONSE (Part 2 §10.13.3). */
export interface AuthResponse {
  nonceTPM: Uint8Array;
  sessionAttributes: number;
  hmac: Uint8Array;
}

/** Marshals a complete command frame from a descriptor, its input and the authorizations. */
export function marshalCommand<C extends CommandDescriptor>(
  cmd: C,
  input: CommandInput<C>,
  auths: Partial<Record<string, Authorization>> = {},
  /** Names of the command's handles, needed only for sessions that compute an HMAC. */
  names: Partial<Record<string, Uint8Array>> = {},
): Uint8Array {
  const authHandles = cmd.handles.filter((h) => h.auth === 'auth');
  const tag = authHandles.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  const obj = input as Record<string, unknown>;
  // An HMAC session signs the parameters' bytes (cpHash): then they are encoded first. Else
  // they go straight into the frame.
  let paramBytes: Uint8Array | undefined;
  if (authHandles.some((h) => auths[h.name]?.hmacFor)) {
    const pw = new Writer(256);
    cmd.params.encode(pw, input as any);
    paramBytes = pw.finish();
  }

  const w = new Writer((paramBytes?.length ?? 256) + 128);
  w.path.push(cmd.name);
  w.u16(tag);
  w.u32(0); // size, patched below
  w.u32(cmd.code);
  for (const h of cmd.handles) {
    w.path.push(h.name);
    w.u32(obj[h.name] as number);
    w.path.pop();
  }
  if (authHandles.length > 0) {
    const at = w.length;
    w.u32(0);
    for (const h of authHandles) {
      const a = auths[h.name] ?? EMPTY_PASSWORD;
      w.path.push(`authorization(${h.name})`);
      let hmac = a.hmac;
      if (a.hmacFor) {
        const handleNames = cmd.handles.map((x) => names[x.name] ?? defaultName(obj[x.name] as number, x.name, w));
        hmac = sessionHmac(a.hmacFor, cpHash(a.hmacFor.hashAlg, cmd.code, handleNames, paramBytes!), a.nonceCaller, a.sessionAttributes);
      }
      w.u32(a.sessionHandle);
      TPM2B_NONCE.encode(w, a.nonceCaller);
      w.u8(a.sessionAttributes);
      TPM2B_AUTH.encode(w, hmac);
      w.path.pop();
    }
    w.patchU32(at, w.length - at - 4);
  }
  w.path.pop();
  if (paramBytes) w.bytes(paramBytes);
  else cmd.params.encode(w, input as any);
  w.patchU32(2, w.length);
  return w.finish();
}

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

/** cpHash (Part 1 §18.7): H(commandCode ‖ Name1 ‖ … ‖ parameters). */
export function cpHash(hashAlg: number, code: number, handleNames: Uint8Array[], params: Uint8Array): Uint8Array {
  const h = createHash(hashName(hashAlg));
  const cc = new Uint8Array(4);
  new DataView(cc.buffer).setUint32(0, code);
  h.update(cc);
  for (const n of handleNames) h.update(n);
  h.update(params);
  return new Uint8Array(h.digest());
}

/** Command HMAC (Part 1 §19.6.5): HMAC(sessionKey ‖ authValue, pHash ‖ nonceNewer ‖ nonceOlder ‖ attrs). */
function sessionHmac(s: SessionHmac, pHash: Uint8Array, nonceCaller: Uint8Array, attrs: number): Uint8Array {
  const key = Buffer.concat([s.sessionKey ?? new Uint8Array(0), s.authValue ?? new Uint8Array(0)]);
  return new Uint8Array(
    createHmac(hashName(s.hashAlg), key).update(pHash).update(nonceCaller).update(s.nonceTPM).update(Uint8Array.of(attrs)).digest(),
  );
}

function hashName(alg: number): string {
  const n = NODE_HASH[alg];
  if (!n) throw new TpmEncodeError(`hash algorithm 0x${alg.toString(16)} is not available for session HMACs`, '');
  return n;
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
 */
export function unmarshalResponse<C extends CommandDescriptor>(cmd: C, response: Uint8Array, sessionCount?: number): DecodedResponse<C> {
  const nSessions = sessionCount ?? cmd.handles.filter((h) => h.auth === 'auth').length;
  const r = new Reader(response);
  r.path.push(`${cmd.name} response`);
  const tag = r.u16();
  const size = r.u32();
  if (size !== response.length) r.fail(`header size ${size} does not match the ${response.length} bytes received`, 2);
  const rc = r.u32();
  if (rc !== 0) {
    if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS) r.fail(`unknown tag 0x${tag.toString(16)}`, 0);
    if (r.remaining !== 0) r.fail(`error response carries ${r.remaining} unexpected bytes`);
    throw new TpmError(rc, { name: cmd.name, code: cmd.code });
  }
  const expectTag = nSessions > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  if (tag !== expectTag) r.fail(`tag 0x${tag.toString(16)} but expected 0x${expectTag.toString(16)}`, 0);
  const out: Record<string, unknown> = {};
  for (const h of cmd.responseHandles) {
    r.path.push(h);
    out[h] = r.u32();
    r.path.pop();
  }
  let params: Record<string, unknown>;
  const auths: AuthResponse[] = [];
  if (nSessions > 0) {
    const psAt = r.offset;
    const parameterSize = r.u32();
    if (parameterSize > r.remaining) r.fail(`parameterSize ${parameterSize} is more than the ${r.remaining} bytes left`, psAt);
    params = r.exactly(parameterSize, 'parameters', (sub) => cmd.response.decode(sub)) as Record<string, unknown>;
    for (let i = 0; i < nSessions; i++) {
      r.path.push(`authResponse[${i}]`);
      const nonceTPM = TPM2B_NONCE.decode(r);
      const sessionAttributes = r.u8();
      const hmac = TPM2B_AUTH.decode(r);
      auths.push({ nonceTPM, sessionAttributes, hmac });
      r.path.pop();
    }
  } else {
    params = cmd.response.decode(r) as Record<string, unknown>;
  }
  if (r.remaining !== 0) r.fail(`${r.remaining} trailing bytes after the response`);
  Object.assign(out, params);
  return { output: out as CommandOutput<C>, auths };
}

/** Describes a handle for messages: 0x81010000. */
export const showHandle = hex32;

export interface DecodedCommand {
  tag: number;
  commandCode: number;
  handles: Record<string, number>;
  auths: Authorization[];
  params: Record<string, unknown>;
}

/**
 * Decodes a command frame (the decoder tool, and tests that a frame round-trips): header,
 * the descriptor's handles, the authorization area (which must exactly fill its declared
 * size) and the parameters, consumed exactly.
 */
export function unmarshalCommand(cmd: CommandDescriptor, frame: Uint8Array): DecodedCommand {
  const r = new Reader(frame);
  r.path.push(`${cmd.name} command`);
  const tag = r.u16();
  if (tag !== TPM_ST.SESSIONS && tag !== TPM_ST.NO_SESSIONS) r.fail(`unknown tag 0x${tag.toString(16)}`, 0);
  const size = r.u32();
  if (size !== frame.length) r.fail(`header size ${size} does not match the ${frame.length} bytes given`, 2);
  const code = r.u32();
  if (code !== cmd.code) r.fail(`command code ${hex32(code)} is not ${cmd.name}`, 6);
  const handles: Record<string, number> = {};
  for (const h of cmd.handles) {
    r.path.push(h.name);
    handles[h.name] = r.u32();
    r.path.pop();
  }
  const auths: Authorization[] = [];
  if (tag === TPM_ST.SESSIONS) {
    const at = r.offset;
    const authSize = r.u32();
    if (authSize > r.remaining) r.fail(`authorizationSize ${authSize} is more than the ${r.remaining} bytes left`, at);
    r.exactly(authSize, 'authorization area', (sub) => {
      while (sub.remaining > 0) {
        if (auths.length >= 3) sub.fail('more than 3 sessions');
        sub.path.push(`authorization[${auths.length}]`);
        const sessionHandle = sub.u32();
        const nonceCaller = TPM2B_NONCE.decode(sub);
        const sessionAttributes = sub.u8();
        const hmac = TPM2B_AUTH.decode(sub);
        sub.path.pop();
        auths.push({ sessionHandle, nonceCaller, sessionAttributes, hmac });
      }
    });
    if (auths.length === 0) r.fail('TPM_ST_SESSIONS with an empty authorization area', at);
  }
  const params = cmd.params.decode(r) as Record<string, unknown>;
  if (r.remaining !== 0) r.fail(`${r.remaining} trailing bytes after the parameters`);
  return { tag, commandCode: code, handles, auths, params };
}

/** Re-marshals a decoded command (keeps its tag and authorizations as they were). */
export function remarshalCommand(cmd: CommandDescriptor, d: DecodedCommand): Uint8Array {
  const w = new Writer(512);
  w.u16(d.tag);
  w.u32(0);
  w.u32(cmd.code);
  for (const h of cmd.handles) w.u32(d.handles[h.name] as number);
  if (d.tag === TPM_ST.SESSIONS) {
    const at = w.length;
    w.u32(0);
    for (const a of d.auths) {
      w.u32(a.sessionHandle);
      TPM2B_NONCE.encode(w, a.nonceCaller);
      w.u8(a.sessionAttributes);
      TPM2B_AUTH.encode(w, a.hmac);
    }
    w.patchU32(at, w.length - at - 4);
  }
  cmd.params.encode(w, d.params);
  w.patchU32(2, w.length);
  return w.finish();
}

/**
 * Marshals a successful response frame (the decoder tool's round-trip, and fake TPMs in tests).
 * With `auths`, the frame is TPM_ST_SESSIONS with a parameterSize and those auth responses.
 */
export function marshalResponse<C extends CommandDescriptor>(cmd: C, output: CommandOutput<C>, auths?: AuthResponse[]): Uint8Array {
  const w = new Writer(512);
  const obj = output as Record<string, unknown>;
  const withSessions = auths !== undefined && auths.length > 0;
  w.u16(withSessions ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
  w.u32(0);
  w.u32(0);
  for (const h of cmd.responseHandles) {
    w.path.push(h);
    w.u32(obj[h] as number);
    w.path.pop();
  }
  if (withSessions) {
    const at = w.length;
    w.u32(0);
    cmd.response.encode(w, obj);
    w.patchU32(at, w.length - at - 4);
    for (const a of auths) {
      TPM2B_NONCE.encode(w, a.nonceTPM);
      w.u8(a.sessionAttributes);
      TPM2B_AUTH.encode(w, a.hmac);
    }
  } else {
    cmd.response.encode(w, obj);
  }
  w.patchU32(2, w.length);
  return w.finish();
}

/** An error response frame: header only, TPM_ST_NO_SESSIONS. */
export function marshalErrorResponse(rc: number): Uint8Array {
  const w = new Writer(10);
  w.u16(TPM_ST.NO_SESSIONS);
  w.u32(10);
  w.u32(rc);
  return w.finish();
}
