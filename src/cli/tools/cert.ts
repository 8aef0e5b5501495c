import { CliError, EXIT } from '../errors.js';
import type { ToolDef } from '../run.js';

// Placeholder: filled in by its issue's work (see docs/TOOLS.md).
export const cert: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_cert',
  summary: 'Make a self-signed X.509 certificate signed in the TPM by one of your keys.',
  configure() {},
  run() {
    return Promise.reject(new CliError('eve_tools_tpm2_cert is not available yet', EXIT.UNSUPPORTED));
  },
};
