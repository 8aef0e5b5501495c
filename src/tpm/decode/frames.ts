/**
 * Whole TPM frames ⇄ annotated views, for people reading TPM traffic (`tpm2-decode`).
 *
 * Decoding goes through the library's own strict unmarshallers (`unmarshalCommand`,
 * `unmarshalResponse`, the structure codecs), so what this shows is exactly what the library
 * accepts; anything else is a TpmDecodeError naming the structure path and byte offset.
 * Encoding a view back uses the library's marshallers, so a byte-identical round trip shows
 * that nothing was lost or invented on the way.
 */
import { COMMANDS } from '../commands.js';
import { remarshalCommand, unmarshalCommand, unmarshalResponse, marshalResponse, type AuthResponse, type Authorization, type CommandDescriptor, type CommandOutput } from '../command.js';
import { TPM_CC, TPM_ST } from '../constants.js';
import { decodeRc } from '../rc.js';
import { STRUCTURES } from '../structures.js';
import { decode, encode, type AnyCodec } from '../wire/codec.js';
import { TpmDecodeError, TpmEncodeError } from '../wire/errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { handleName, hex32, sessionFlags } from './names.js';
import { fromRecordView, isRecord, parseBytes, parseInteger, toRecordView, toView, fromView } from './view.js';

type Descriptor = CommandDescriptor;

export interface CommandSessionView {
  handle: string;
  handleName?: string;
  nonce: Uint8Array;
  attributes: number;
  attributesFlags: string;
  hmac: Uint8Array;
}

export interface ResponseSessionView {
  nonce: Uint8Array;
  attributes: number;
  attributesFlags: string;
  hmac: Uint8Array;
}

export interface CommandFrameView {
  frame: 'command';
  tag: number;
  tagName?: string;
  size: number;
  commandCode: string;
  command: string;
  /** Where the command is specified (TPM 2.0 Library Part 3). */
  spec: string;
  /** Handle area, by the descriptor's names, as "0x%08x" (plus `<name>Name` for permanent handles). */
  handles: Record<string, string>;
  sessions: CommandSessionView[];
  parameters: Record<string, unknown>;
}

export interface ResponseErrorView {
  rc: string;
  kind: string;
  index?: number;
  base: string;
  baseName?: string;
  /** tpm2-tss's text (Tss2_RC_Decode). */
  text: string;
  description?: string;
  /** The handle / parameter / session the index points at, by the descriptor's names. */
  subject?: string;
}

export interface ResponseFrameView {
  frame: 'response';
  tag: number;
  tagName?: string;
  size: number;
  rc: string;
  commandCode: string;
  command: string;
  /** Present for a non-zero response code (then there are no handles or parameters). */
  error?: ResponseErrorView;
  handles?: Record<string, string>;
  parameterSize?: number;
  parameters?: Record<string, unknown>;
  sessions?: ResponseSessionView[];
}

export interface StructureView {
  structure: string;
  size: number;
  value: unknown;
}

const tagName = (tag: number) => (tag === TPM_ST.SESSIONS ? 'TPM_ST_SESSIONS' : tag === TPM_ST.NO_SESSIONS ? 'TPM_ST_NO_SESSIONS' : undefined);

function handlesView(names: readonly string[], values: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const h = values[n];
    if (typeof h !== 'number') throw new TpmDecodeError(`handle ${n} is missing`, 'handles', 0);
    out[n] = hex32(h);
    const label = handleName(h);
    if (label !== undefined && !names.includes(n + 'Name')) out[n + 'Name'] = label;
  }
  return out;
}

/** The descriptor for a command code, or a TpmDecodeError pointing at the code's bytes. */
function descriptorAt(code: number, offset: number, what: string): Descriptor {
  const d = COMMANDS.get(code);
  if (!d) {
    const known = Object.entries(TPM_CC).find(([, v]) => v === code)?.[0];
    throw new TpmDecodeError(`unknown command code ${hex32(code)}${known ? ` (TPM2_${known} has no descriptor)` : ''}`, what, offset);
  }
  return d;
}

/** The descriptor for a command given as a code (number, "0x15d", "349") or a name ("Sign", "TPM2_Sign", "TPM_CC_Sign"). */
export function lookupCommand(spec: number | string): Descriptor | undefined {
  if (typeof spec === 'number') return COMMANDS.get(spec);
  const s = spec.trim();
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(s)) return COMMANDS.get(Number(s));
  const bare = s.replace(/^(TPM2_|TPM_CC_)/i, '').toLowerCase();
  for (const d of COMMANDS.values()) if (d.name.toLowerCase() === bare) return d;
  return undefined;
}

/** Decodes a command frame: header, handles by name, session area, parameters. */
export function decodeCommandFrame(bytes: Uint8Array): CommandFrameView {
  const r = new Reader(bytes);
  r.path.push('command');
  const tag = r.u16();
  const size = r.u32();
  const code = r.u32();
  const cmd = descriptorAt(code, 6, 'command');
  const d = unmarshalCommand(cmd, bytes);
  return {
    frame: 'command',
    tag,
    ...(tagName(tag) ? { tagName: tagName(tag) } : {}),
    size,
    commandCode: hex32(code),
    command: cmd.name,
    spec: cmd.spec,
    handles: handlesView(
      cmd.handles.map((h) => h.name),
      d.handles,
    ),
    sessions: d.auths.map((a) => {
      const hn = handleName(a.sessionHandle);
      return {
        handle: hex32(a.sessionHandle),
        ...(hn ? { handleName: hn } : {}),
        nonce: a.nonceCaller,
        attributes: a.sessionAttributes,
        attributesFlags: sessionFlags(a.sessionAttributes),
        hmac: a.hmac,
      };
    }),
    parameters: toRecordView(cmd.params, d.params),
  };
}

/**
 * How many authorization entries a successful TPM_ST_SESSIONS response carries, counted from
 * its bytes (used when the command, which tells it, is not at hand). Undefined if the frame is
 * too broken to tell; the strict decoder then says what is wrong.
 */
function countResponseSessions(cmd: Descriptor, bytes: Uint8Array): number | undefined {
  try {
    const r = new Reader(bytes);
    r.offset = 10 + 4 * cmd.responseHandles.length;
    const parameterSize = r.u32();
    if (parameterSize > r.remaining) return undefined;
    r.offset += parameterSize;
    let n = 0;
    while (r.remaining > 0 && n < 3) {
      r.bytes(r.u16());
      r.u8();
      r.bytes(r.u16());
      n++;
    }
    return n;
  } catch {
    return undefined;
  }
}

/**
 * Decodes a response frame to command `commandCode` (number, or anything `lookupCommand`
 * takes). `sessionCount` is how many sessions the command carried; without it, it is read from
 * the response itself. A non-zero response code is not a failure here: it is shown as `error`.
 */
export function decodeResponseFrame(bytes: Uint8Array, commandCode: number | string, sessionCount?: number): ResponseFrameView {
  const cmd = lookupCommand(commandCode);
  if (!cmd) throw new TpmDecodeError(`unknown command ${typeof commandCode === 'number' ? hex32(commandCode) : JSON.stringify(commandCode)}`, 'response', 0);
  const r = new Reader(bytes);
  r.path.push(`${cmd.name} response`);
  const tag = r.u16();
  const size = r.u32();
  if (size !== bytes.length) r.fail(`header size ${size} does not match the ${bytes.length} bytes given`, 2);
  const rc = r.u32();
  const head = {
    frame: 'response' as const,
    tag,
    ...(tagName(tag) ? { tagName: tagName(tag) } : {}),
    size,
    rc: hex32(rc),
    commandCode: hex32(cmd.code),
    command: cmd.name,
  };
  if (rc !== 0) {
    // Same checks as unmarshalResponse makes before it throws the TpmError.
    if (tagName(tag) === undefined) r.fail(`unknown tag 0x${tag.toString(16)}`, 0);
    if (r.remaining !== 0) r.fail(`error response carries ${r.remaining} unexpected bytes`);
    return { ...head, error: errorView(rc, cmd) };
  }
  // TPM_ST_SESSIONS promises at least one session: with none found, let the strict decoder
  // report the missing auth area rather than a tag mismatch.
  const n = sessionCount ?? (tag === TPM_ST.SESSIONS ? countResponseSessions(cmd, bytes) || 1 : 0);
  const { output, auths } = unmarshalResponse(cmd, bytes, n);
  const out: Record<string, unknown> = output;
  return {
    ...head,
    handles: handlesView(cmd.responseHandles, out),
    ...(n > 0 ? { parameterSize: new DataView(bytes.buffer, bytes.byteOffset).getUint32(10 + 4 * cmd.responseHandles.length) } : {}),
    parameters: toRecordView(cmd.response, out),
    sessions: auths.map((a) => ({
      nonce: a.nonceTPM,
      attributes: a.sessionAttributes,
      attributesFlags: sessionFlags(a.sessionAttributes),
      hmac: a.hmac,
    })),
  };
}

function errorView(rc: number, cmd: Descriptor): ResponseErrorView {
  const info = decodeRc(rc);
  let subject: string | undefined;
  if (info.index !== undefined) {
    if (info.kind === 'handle') subject = cmd.handles[info.index - 1]?.name;
    else if (info.kind === 'parameter' && cmd.params.meta.kind === 'struct') subject = Object.keys(cmd.params.meta.fields)[info.index - 1];
    else if (info.kind === 'session') subject = `session[${info.index - 1}]`;
  }
  return {
    rc: hex32(info.rc),
    kind: info.kind,
    ...(info.index !== undefined ? { index: info.index } : {}),
    base: '0x' + info.base.toString(16).padStart(3, '0'),
    ...(info.baseName ? { baseName: info.baseName } : {}),
    text: info.text,
    ...(info.description ? { description: info.description } : {}),
    ...(subject ? { subject } : {}),
  };
}

/** The codec registered in STRUCTURES under `name` (case-insensitive), or undefined. */
export function lookupStructure(name: string): { name: string; codec: AnyCodec } | undefined {
  const want = name.trim().toUpperCase();
  for (const [k, c] of Object.entries(STRUCTURES)) if (k.toUpperCase() === want) return { name: k, codec: c };
  return undefined;
}

/** Decodes exactly `bytes` as the named structure (TPM2B_PUBLIC, TPMT_SIGNATURE, ...). */
export function decodeStructure(name: string, bytes: Uint8Array): StructureView {
  const s = lookupStructure(name);
  if (!s) throw new TpmDecodeError(`unknown structure ${JSON.stringify(name)}`, '', 0);
  return { structure: s.name, size: bytes.length, value: toView(s.codec, decode(s.codec, bytes)) };
}

// ---------------------------------------------------------------- views back to bytes

function record(v: unknown, path: string[]): Record<string, unknown> {
  if (!isRecord(v)) throw new TpmEncodeError('expected an object', path.join('.'));
  return v;
}

function descriptorOfView(v: Record<string, unknown>, path: string[]): Descriptor {
  const cmd = typeof v.command === 'string' ? lookupCommand(v.command) : undefined;
  const byCode = v.commandCode !== undefined ? lookupCommand(parseInteger(v.commandCode, [...path, 'commandCode'])) : undefined;
  const d = byCode ?? cmd;
  if (!d) throw new TpmEncodeError('unknown command', path.join('.'));
  return d;
}

/** Marshals a command view (or its JSON form) back into a frame. */
export function encodeCommandFrame(view: CommandFrameView | Record<string, unknown>): Uint8Array {
  const v = record(view, []);
  const cmd = descriptorOfView(v, ['command']);
  const hs = record(v.handles ?? {}, ['handles']);
  const handles: Record<string, number> = {};
  for (const h of cmd.handles) handles[h.name] = parseInteger(hs[h.name], ['handles', h.name]);
  const sessions = Array.isArray(v.sessions) ? v.sessions : [];
  const auths: Authorization[] = sessions.map((s, i) => {
    const p = ['sessions', `[${i}]`];
    const o = record(s, p);
    return {
      sessionHandle: parseInteger(o.handle, [...p, 'handle']),
      nonceCaller: parseBytes(o.nonce, [...p, 'nonce']),
      sessionAttributes: parseInteger(o.attributes, [...p, 'attributes']),
      hmac: parseBytes(o.hmac, [...p, 'hmac']),
    };
  });
  const params = fromRecordView(cmd.params, v.parameters, ['parameters']);
  const tag = v.tag === undefined ? (auths.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS) : parseInteger(v.tag, ['tag']);
  return remarshalCommand(cmd, { tag, commandCode: cmd.code, handles, auths, params });
}

/** Marshals a response view (or its JSON form) back into a frame. */
export function encodeResponseFrame(view: ResponseFrameView | Record<string, unknown>): Uint8Array {
  const v = record(view, []);
  const cmd = descriptorOfView(v, ['response']);
  const rc = v.rc === undefined ? 0 : parseInteger(v.rc, ['rc']);
  if (rc !== 0) {
    // An error response is its header alone.
    const w = new Writer(10);
    w.u16(v.tag === undefined ? TPM_ST.NO_SESSIONS : parseInteger(v.tag, ['tag']));
    w.u32(10);
    w.u32(rc);
    return w.finish();
  }
  const hs = record(v.handles ?? {}, ['handles']);
  const output: Record<string, unknown> = {};
  for (const h of cmd.responseHandles) output[h] = parseInteger(hs[h], ['handles', h]);
  Object.assign(output, fromRecordView(cmd.response, v.parameters, ['parameters']));
  const sessions = Array.isArray(v.sessions) ? v.sessions : [];
  const auths: AuthResponse[] = sessions.map((s, i) => {
    const p = ['sessions', `[${i}]`];
    const o = record(s, p);
    return {
      nonceTPM: parseBytes(o.nonce, [...p, 'nonce']),
      sessionAttributes: parseInteger(o.attributes, [...p, 'attributes']),
      hmac: parseBytes(o.hmac, [...p, 'hmac']),
    };
  });
  // The JSON view is the I/O boundary: fromRecordView checked each field against its codec,
  // and marshalResponse checks them again as it encodes.
  return marshalResponse(cmd, output as CommandOutput<Descriptor>, auths);
}

/** Marshals a structure view (or its JSON form) back into bytes. */
export function encodeStructure(view: StructureView | Record<string, unknown>): Uint8Array {
  const v = record(view, []);
  const s = typeof v.structure === 'string' ? lookupStructure(v.structure) : undefined;
  if (!s) throw new TpmEncodeError(`unknown structure ${JSON.stringify(v.structure)}`, '');
  return encode(s.codec, fromView(s.codec, v.value, [s.name]));
}
