import type { ToolDef } from '../run.js';

// PLACEHOLDER: being written.
export const quote: ToolDef = {
  name: 'eve_tools_tpm2_quote',
  summary: 'Quote PCRs with an AK of this application (as tpm2_quote).',
  configure() {},
  async run() {
    throw new Error('eve_tools_tpm2_quote is not available in this build');
  },
};
