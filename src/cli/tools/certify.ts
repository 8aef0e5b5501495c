import type { ToolDef } from '../run.js';

// PLACEHOLDER: being written.
export const certify: ToolDef = {
  name: 'eve_tools_tpm2_certify',
  summary: 'Certify a key of this application with its AK, or with the device key (as tpm2_certify).',
  configure() {},
  async run() {
    throw new Error('eve_tools_tpm2_certify is not available in this build');
  },
};
