import { CliError, EXIT } from '../errors.js';
import type { ToolDef } from '../run.js';

// Placeholder: filled in by its issue's work (see docs/TOOLS.md).
export const genkey: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_genkey',
  summary: 'Create a general (non-restricted) signing or decryption key in the TPM and print its handle.',
  configure() {},
  run() {
    return Promise.reject(new CliError('eve_tools_tpm2_genkey is not available yet', EXIT.UNSUPPORTED));
  },
};
