/**
 * `eve-tpm-tools/decode`: the decoder behind `tpm2-decode` — TPM command/response frames and
 * single structures to annotated, JSON-able views and back. Decoding only ever throws
 * TpmDecodeError. Pinned by test/package/exports.test.ts.
 */
export {
  decodeCommandFrame,
  decodeCommandHex,
  decodeResponseFrame,
  decodeResponseHex,
  decodeStructure,
  decodeStructureHex,
  encodeCommandFrame,
  encodeResponseFrame,
  encodeStructure,
  fromView,
  lookupCommand,
  lookupStructure,
  roundtrip,
  toJson,
  toView,
  type CommandFrameView,
  type CommandSessionView,
  type ResponseErrorView,
  type ResponseFrameView,
  type ResponseSessionView,
  type RoundtripReport,
  type StructureView,
} from '../decode/index.js';
export { TpmDecodeError } from '../wire/errors.js';
