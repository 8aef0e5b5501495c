import type { ToolDef } from '../run.js';

// PLACEHOLDER: being written.
export const ekcert: ToolDef = {
  name: 'eve_tools_tpm2_ekcert',
  summary: "The TPM's EK certificate from its NV index.",
  configure() {},
  async run() {
    throw new Error('eve_tools_tpm2_ekcert is not available in this build');
  },
};
