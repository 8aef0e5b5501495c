/**
 * One generic marshaller: builds any command frame from a descriptor, its input and the
 * authorizations, and decodes its response strictly.
 */
import { TPM_HT, TPM_ST, hex32 } from '../constants.js';
import { TPM2B_AUTH, TPM2B_NONCE } from '../structures.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { TpmError } from '../rc.js';
import { handleOf, nameOf, type CommandDescriptor, type HandleArg, type CommandInput, type CommandOutput } from './descriptor.js';
import { cpHash, passwordAuth, sessionHmac, type AuthResponse, type Authorization } from './auth.js';

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
    w.u32(handleOf(obj[h.name] as HandleArg));
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
        const handleNames = cmd.handles.map((x) => {
          const arg = obj[x.name] as HandleArg;
          return names[x.name] ?? nameOf(arg) ?? defaultName(handleOf(arg), x.name, w);
        });
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


/**
 * What a caller may pass for one command besides its input: the authorizations by handle
 * name. (Sessions extend this: extra encrypt/decrypt/audit sessions live here too.)
 */
export interface CallOptions {
  /** Authorizations for handles that need them, by handle name; default: empty password. */
  auth?: Partial<Record<string, Authorization>>;
}

/**
 * One command ready to send: its frame, and the decoder for its response, which knows what was
 * sent (the sessions' nonces, the parameters' bytes) so that response HMACs can be checked and
 * encrypted response parameters decrypted. The executor calls `decode` once per response.
 */
export interface PreparedCommand<C extends CommandDescriptor> {
  readonly request: Uint8Array;
  decode(response: Uint8Array): DecodedResponse<C>;
}

/** Marshals a command for sending and returns how to decode its response. */
export function prepareCommand<C extends CommandDescriptor>(cmd: C, input: CommandInput<C>, opts: CallOptions = {}): PreparedCommand<C> {
  const request = marshalCommand(cmd, input, opts.auth);
  return { request, decode: (response) => unmarshalResponse(cmd, response) };
}
