/**
 * Reading an app's command frame strictly (Part 1 §18, Part 3 §5 "Command Processing"): the
 * header, the handle area, the authorization area and each parameter with the library's
 * codecs — sizes checked, nothing left over. Each failure becomes the response code the TPM
 * itself would give, naming the parameter in error where the TPM would.
 */
import { TPM_ST } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import { readAuthArea, type AnyCommand, type Authorization } from '../tpm/command.js';
import { tpm2b, type AnyCodec } from '../tpm/wire/codec.js';
import { Reader } from '../tpm/wire/reader.js';
import { TpmDecodeError } from '../tpm/wire/errors.js';
import { atParam, refuse } from './refusal.js';

/** The largest command an app may send: TPM_PT_MAX_COMMAND_SIZE of common TPMs (Part 2 §6.13). */
export const MAX_COMMAND_SIZE = 4096;
/** TPM_ST_RSP_COMMAND: the TPM 1.2 tag (Part 2 §6.9), answered with TPM_RC_BAD_TAG. */
const TPM12_TAG = 0x00c1;

export interface Header {
  readonly tag: number;
  readonly code: number;
}

/** A command read in full: its handles in order, its authorizations, its parameters by name. */
export interface ParsedCommand extends Header {
  readonly handles: number[];
  readonly auths: Authorization[];
  readonly params: Record<string, unknown>;
  /** The parameter codecs used (the first may be opaque when a decrypt session hides it). */
  readonly fields: readonly [string, AnyCodec][];
}

/** Reads the 10-byte header: TPM_RC_COMMAND_SIZE / TPM_RC_BAD_TAG as the TPM answers them. */
export function readHeader(frame: Uint8Array): Header {
  if (frame.length < 10) refuse(TPM_RC.COMMAND_SIZE, `a command frame has at least 10 bytes, got ${frame.length}`);
  if (frame.length > MAX_COMMAND_SIZE) refuse(TPM_RC.COMMAND_SIZE, `${frame.length} bytes is more than ${MAX_COMMAND_SIZE}`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const tag = view.getUint16(0);
  if (tag !== TPM_ST.SESSIONS && tag !== TPM_ST.NO_SESSIONS) {
    refuse(TPM_RC.BAD_TAG, tag === TPM12_TAG ? 'a TPM 1.2 command' : `unknown tag 0x${tag.toString(16)}`);
  }
  const size = view.getUint32(2);
  if (size !== frame.length) refuse(TPM_RC.COMMAND_SIZE, `header size ${size} but the frame has ${frame.length} bytes`);
  return { tag, code: view.getUint32(6) };
}

/** TPMA_SESSION.decrypt (Part 2 §8.4): the first parameter, if a TPM2B, is encrypted. */
const DECRYPT = 0x20;

/** Reads the rest of the frame against the command's descriptor. */
export function readCommand(cmd: AnyCommand, frame: Uint8Array, header: Header): ParsedCommand {
  const r = new Reader(frame);
  r.offset = 10;
  const handles: number[] = [];
  for (let i = 0; i < cmd.handles.length; i++) {
    if (r.remaining < 4) refuse(TPM_RC.INSUFFICIENT, `${cmd.name}: the frame ends inside the handle area`);
    handles.push(r.u32());
  }
  const authCount = authCountOf(cmd);
  let auths: Authorization[] = [];
  if (header.tag === TPM_ST.SESSIONS) {
    try {
      auths = readAuthArea(r);
    } catch (e) {
      if (e instanceof TpmDecodeError) refuse(TPM_RC.AUTHSIZE, `${cmd.name}: authorization area: ${e.reason}`);
      throw e;
    }
  }
  if (auths.length < authCount) refuse(TPM_RC.AUTH_MISSING, `${cmd.name} needs ${authCount} authorization(s), got ${auths.length}`);
  const fields = paramFields(cmd, auths.some((a) => a.sessionAttributes >= DECRYPT && Math.floor(a.sessionAttributes / DECRYPT) % 2 === 1));
  const params: Record<string, unknown> = {};
  for (let i = 0; i < fields.length; i++) {
    const [name, codec] = fields[i]!;
    try {
      params[name] = codec.decode(r, params);
    } catch (e) {
      if (!(e instanceof TpmDecodeError)) throw e;
      refuse(atParam(faultOf(e.reason), i + 1), `${cmd.name}.${name}: ${e.reason}`);
    }
  }
  if (r.remaining !== 0) refuse(TPM_RC.SIZE, `${cmd.name}: ${r.remaining} bytes after the last parameter`);
  return { tag: header.tag, code: header.code, handles, auths, params, fields };
}

/**
 * The TPM's code for a parameter that does not unmarshal (Part 3 §5.2): the codecs' reasons
 * (src/tpm/wire, interpreted and generated alike) are "need n bytes…" for a frame that ends
 * too soon, "size …"/"count …"/"…size field says…" for a size or count, anything else a value.
 */
function faultOf(reason: string): number {
  if (reason.startsWith('need ')) return TPM_RC.INSUFFICIENT;
  if (reason.startsWith('size ') || reason.startsWith('count ') || reason.includes('size field says')) return TPM_RC.SIZE;
  return TPM_RC.VALUE;
}

/**
 * The parameter codecs in wire order. Under a decrypt session the first parameter's contents
 * are ciphertext: only its size is checked (any TPM2B in that place is carried as bytes).
 */
function paramFields(cmd: AnyCommand, decrypt: boolean): readonly [string, AnyCodec][] {
  const known = FIELDS.get(cmd)?.[decrypt ? 1 : 0];
  if (known) return known;
  const fields = fieldsOf(cmd, decrypt);
  const pair = FIELDS.get(cmd) ?? [undefined, undefined];
  pair[decrypt ? 1 : 0] = fields;
  FIELDS.set(cmd, pair);
  return fields;
}

/** Each descriptor's parameter list, plain and under a decrypt session: made once, read per frame. */
const FIELDS = new WeakMap<AnyCommand, [(readonly [string, AnyCodec][]) | undefined, (readonly [string, AnyCodec][]) | undefined]>();
const AUTH_COUNT = new WeakMap<AnyCommand, number>();

function authCountOf(cmd: AnyCommand): number {
  let n = AUTH_COUNT.get(cmd);
  if (n === undefined) {
    n = cmd.handles.filter((h) => h.auth === 'auth').length;
    AUTH_COUNT.set(cmd, n);
  }
  return n;
}

function fieldsOf(cmd: AnyCommand, decrypt: boolean): readonly [string, AnyCodec][] {
  const meta = cmd.params.meta;
  if (meta.kind !== 'struct') throw new TypeError(`${cmd.name}: parameters are not a struct`);
  const fields = Object.entries(meta.fields);
  const first = fields[0];
  if (decrypt && first && (first[1].meta.kind === 'tpm2b' || first[1].meta.kind === 'sized')) {
    fields[0] = [first[0], tpm2b(`${first[0]} (encrypted)`, MAX_COMMAND_SIZE)];
  }
  return fields;
}
