/**
 * The layout of command and response frames (Part 1 §18): header, handles, authorization
 * area, parameters. Shared by the plain marshaller (marshal.ts) and the session path
 * (../session/prepare.ts), so both write and read exactly the same bytes.
 */
import { TPM_ST } from '../constants.js';
import { TpmError } from '../rc.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { readAuthResponses, writeAuthArea, type AuthResponse, type Authorization } from './auth.js';
import { handleOf, type CommandDescriptor, type CommandOutput, type HandleArg } from './descriptor.js';

/**
 * Writes a command frame. `count` authorization entries come from `entry(i)` (none: tag
 * TPM_ST_NO_SESSIONS). The parameters are `paramBytes` when given (already encoded, maybe
 * encrypted), else encoded from `input` straight into the frame.
 */
export function writeCommand(
  cmd: CommandDescriptor,
  input: Record<string, unknown>,
  count: number,
  entry: (i: number) => Authorization,
  label: (i: number) => string,
  paramBytes?: Uint8Array,
): Uint8Array {
  const w = new Writer((paramBytes?.length ?? 256) + 128);
  w.path.push(cmd.name);
  w.u16(count > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
  w.u32(0); // size, patched below
  w.u32(cmd.code);
  for (const h of cmd.handles) {
    w.path.push(h.name);
    w.u32(handleOf(input[h.name] as HandleArg));
    w.path.pop();
  }
  if (count > 0) writeAuthArea(w, count, entry, label);
  w.path.pop();
  if (paramBytes) w.bytes(paramBytes);
  else cmd.params.encode(w, input);
  w.patchU32(2, w.length);
  return w.finish();
}

/**
 * Sees a successful response's parameter bytes and auth responses before the parameters are
 * decoded, and returns the bytes to decode (the session path checks HMACs and decrypts here).
 */
export type ResponseHook = (params: Uint8Array, auths: AuthResponse[]) => Uint8Array;

/**
 * Decodes a response frame strictly: header size equal to the frame's length, tag matching
 * whether sessions were sent, parameters consumed exactly (parameterSize), one auth response
 * per session sent, nothing trailing. A non-zero response code throws TpmError.
 */
export function readResponse<C extends CommandDescriptor>(
  cmd: C,
  response: Uint8Array,
  nSessions: number,
  hook?: ResponseHook,
): { output: CommandOutput<C>; auths: AuthResponse[] } {
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
  let auths: AuthResponse[] = [];
  if (nSessions > 0) {
    const psAt = r.offset;
    const parameterSize = r.u32();
    if (parameterSize > r.remaining) r.fail(`parameterSize ${parameterSize} is more than the ${r.remaining} bytes left`, psAt);
    if (hook) {
      const raw = r.bytes(parameterSize);
      auths = readAuthResponses(r, nSessions);
      if (r.remaining !== 0) r.fail(`${r.remaining} trailing bytes after the response`);
      const pr = new Reader(hook(raw, auths));
      pr.path.push(`${cmd.name} response`, 'parameters');
      params = cmd.response.decode(pr);
      if (pr.remaining !== 0) pr.fail(`parameters: parameterSize says ${parameterSize} bytes but the structure used ${pr.offset}`);
    } else {
      params = r.exactly(parameterSize, 'parameters', (sub) => cmd.response.decode(sub));
      auths = readAuthResponses(r, nSessions);
    }
  } else {
    params = cmd.response.decode(r);
  }
  if (r.remaining !== 0) r.fail(`${r.remaining} trailing bytes after the response`);
  Object.assign(out, params);
  return { output: out as CommandOutput<C>, auths };
}
