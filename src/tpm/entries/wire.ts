/**
 * `eve-tpm-tools/wire`: the byte level under the main entry — the bounds-checked Reader/Writer,
 * the codec combinators and integer leaves every structure is built from, the name-indexed schema tables, and
 * command/response frames marshalled without an executor (for a transport of one's own, a TPM
 * simulator or a proxy). Pinned by test/package/exports.test.ts.
 */
export {
  decode,
  encode,
  fixed,
  i32,
  leaf,
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
  variant,
  yesNo,
  type AnyCodec,
  type Codec,
  type Infer,
  type LeafName,
  type Meta,
  type UnionCodec,
  type VariantValue,
} from '../wire/codec.js';
export { Reader } from '../wire/reader.js';
export { Writer } from '../wire/writer.js';
export { TpmDecodeError, TpmEncodeError } from '../wire/errors.js';
export {
  STRUCTURES,
  TPMA_CC,
  TPMA_OBJECT_CODEC,
  TPMA_SESSION_CODEC,
  TPM_ALG_ID,
  TPM_CAP_CODEC,
  TPM_CC_CODEC,
  TPM_ECC_CURVE,
  TPM_HANDLE,
  TPM_SE_CODEC,
  TPM_ST_CODEC,
  TPM_SU_CODEC,
} from '../structures.js';
export { COMMANDS } from '../commands.js';
export {
  cpHash,
  marshalCommand,
  marshalErrorResponse,
  marshalResponse,
  remarshalCommand,
  responseCode,
  rpHash,
  unmarshalCommand,
  unmarshalResponse,
  type AuthResponse,
  type DecodedCommand,
  type DecodedResponse,
} from '../command.js';
