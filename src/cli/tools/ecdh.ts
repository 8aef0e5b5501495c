import { CliError, EXIT } from '../errors.js';
import type { ToolDef } from '../run.js';

// Placeholder: filled in by its issue's work (see docs/TOOLS.md).
export const ecdh: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_ecdh',
  summary: 'Compute an ECDH shared secret (Z) with one of your ECC decryption keys and a peer public key.',
  configure() {},
  run() {
    return Promise.reject(new CliError('eve_tools_tpm2_ecdh is not available yet', EXIT.UNSUPPORTED));
  },
};
