/**
 * eve-tpm-tools — a strict, pure-TypeScript TPM 2.0 library.
 *
 * Layers (each usable on its own):
 * - wire: bounds-checked reader/writer and codec combinators (`struct`, `union`, `sized`, …);
 * - structures and commands: one codec per TPM structure, one descriptor per command;
 * - `Tpm`: the generic executor over a `Transport` (device, swtpm socket, stream);
 * - keys: templates, Names, SubjectPublicKeyInfo/PEM, signature formats, verification;
 * - ops: EK, AK creation/loading, persistence, streamed signing — nothing left loaded.
 */
export * from './wire/codec.js';
export { Reader } from './wire/reader.js';
export { Writer } from './wire/writer.js';
export { TpmDecodeError, TpmEncodeError } from './wire/errors.js';
export * from './constants.js';
export * from './structures.js';
export * from './commands.js';
export {
  command,
  marshalCommand,
  unmarshalCommand,
  remarshalCommand,
  unmarshalResponse,
  marshalResponse,
  marshalErrorResponse,
  responseCode,
  passwordAuth,
  policyAuth,
  cpHash,
  type Authorization,
  type AuthResponse,
  type CommandDescriptor,
  type CommandInput,
  type CommandOutput,
  type DecodedCommand,
  type HandleAuth,
  type SessionHmac,
} from './command.js';
export * from './rc.js';
export { Tpm, type RunOptions, type TpmOptions } from './tpm.js';
export * from './transport/index.js';
export * from './keys/templates.js';
export * from './keys/public.js';
export * from './keys/signature.js';
export * from './keys/verify.js';
export * from './ops/capability.js';
export * from './ops/objects.js';
export * from './ops/session.js';
export * from './ops/ek.js';
export * from './ops/ak.js';
export * from './ops/sign.js';
export * from './decode/index.js';
