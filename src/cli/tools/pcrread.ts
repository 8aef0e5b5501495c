import type { ToolDef } from '../run.js';

// PLACEHOLDER: being written.
export const pcrread: ToolDef = {
  name: 'eve_tools_tpm2_pcrread',
  summary: 'Read PCR values (as tpm2_pcrread).',
  configure() {},
  async run() {
    throw new Error('eve_tools_tpm2_pcrread is not available in this build');
  },
};
