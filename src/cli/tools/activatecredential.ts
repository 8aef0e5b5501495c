import type { ToolDef } from '../run.js';

// PLACEHOLDER: being written.
export const activatecredential: ToolDef = {
  name: 'eve_tools_tpm2_activatecredential',
  summary: 'Activate a credential made for an AK of this application (as tpm2_activatecredential).',
  configure() {},
  async run() {
    throw new Error('eve_tools_tpm2_activatecredential is not available in this build');
  },
};
