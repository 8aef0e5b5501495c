import type { ToolDef } from '../run.js';

// PLACEHOLDER: being written.
export const ekpub: ToolDef = {
  name: 'eve_tools_tpm2_ekpub',
  summary: "The TPM's endorsement key (EK) public key.",
  configure() {},
  async run() {
    throw new Error('eve_tools_tpm2_ekpub is not available in this build');
  },
};
