/**
 * `eve-tpm-tools/wire`: the byte level under the main entry — the bounds-checked Reader/Writer,
 * the codec combinators every structure is built from, the name-indexed schema tables, and
 * command/response frames marshalled without an executor (for a transport of one's own, a TPM
 * simulator or a proxy). Pinned by test/package/exports.test.ts.
 */
export {
  decode,
  encode,
  fixed,
  i32,
  list,
  none,
  oneOf,
  sized,
  struct,
  tpm2b,
  u16,
  u32,
  u64,
  u8,
  union,
  yesNo,
  type Codec,
  type Infer,
  type Meta,
} from '../wire/codec.js';
export { Reader } from '../wire/reader.js';
export { Writer } from '../wire/writer.js';
export { TpmDecodeError, TpmEncodeError } from '../wire/errors.js';
export { STRUCTURES } from '../structures.js';
export { COMMANDS } from '../commands.js';
export {
  cpHash,
  marshalCommand,
  marshalErrorResponse,
  marshalResponse,
  remarshalCommand,
  responseCode,
  unmarshalCommand,
  unmarshalResponse,
  type AuthResponse,
  type DecodedCommand,
  type DecodedResponse,
} from '../command.js';
