import { CliError, EXIT } from '../errors.js';
import type { ToolDef } from '../run.js';

// Placeholder: filled in by its issue's work (see docs/TOOLS.md).
export const tcti: ToolDef<Record<string, never>> = {
  name: 'eve_tools_tpm2_tcti',
  summary: "Carry TPM command frames between tpm2-tss's cmd TCTI (stdin/stdout) and the service's raw channel.",
  configure() {},
  run() {
    return Promise.reject(new CliError('eve_tools_tpm2_tcti is not available yet', EXIT.UNSUPPORTED));
  },
};
