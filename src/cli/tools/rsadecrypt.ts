import { CliError, EXIT } from '../errors.js';
import type { ToolDef } from '../run.js';

// Placeholder: filled in by its issue's work (see docs/TOOLS.md).
export const rsadecrypt: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_rsadecrypt',
  summary: 'Decrypt RSA-OAEP ciphertext with one of your RSA decryption keys.',
  configure() {},
  run() {
    return Promise.reject(new CliError('eve_tools_tpm2_rsadecrypt is not available yet', EXIT.UNSUPPORTED));
  },
};
