/**
 * Frames in the other direction: decoding a command frame and re-marshalling it (the decoder
 * tool, round-trip tests), and marshalling response frames (the decoder tool, fake TPMs).
 */
import { TPM_ST, hex32 } from '../constants.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import type { CommandDescriptor, CommandOutput } from './descriptor.js';
import { TPMS_AUTH_RESPONSE, readAuthArea, writeAuthArea, type AuthResponse, type Authorization } from './auth.js';
import { borrowWriter, framesOf, returnWriter } from './compiled.js';

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
  const decode = framesOf(cmd).decodeCommand;
  if (decode !== undefined) return decode(frame) as DecodedCommand;
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
  const auths: Authorization[] = tag === TPM_ST.SESSIONS ? readAuthArea(r) : [];
  const params = cmd.params.decode(r);
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
  if (d.tag === TPM_ST.SESSIONS) writeAuthArea(w, d.auths.length, (i) => d.auths[i]!, (i) => `authorization[${i}]`);
  cmd.params.encode(w, d.params);
  w.patchU32(2, w.length);
  return w.finish();
}

/**
 * Marshals a successful response frame (the decoder tool's round-trip, and fake TPMs in tests).
 * With `auths`, the frame is TPM_ST_SESSIONS with a parameterSize and those auth responses.
 */
export function marshalResponse<C extends CommandDescriptor>(cmd: C, output: CommandOutput<C>, auths?: AuthResponse[]): Uint8Array {
  const encode = framesOf(cmd).response;
  if (encode !== undefined) {
    const cw = borrowWriter();
    encode(cw, output, auths);
    return returnWriter(cw);
  }
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
    for (const a of auths) TPMS_AUTH_RESPONSE.encode(w, a);
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
