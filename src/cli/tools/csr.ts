import { CliError, EXIT } from '../errors.js';
import type { ToolDef } from '../run.js';

// Placeholder: filled in by its issue's work (see docs/TOOLS.md).
export const csr: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_csr',
  summary: 'Make a PKCS#10 certificate request signed in the TPM by one of your keys.',
  configure() {},
  run() {
    return Promise.reject(new CliError('eve_tools_tpm2_csr is not available yet', EXIT.UNSUPPORTED));
  },
};
