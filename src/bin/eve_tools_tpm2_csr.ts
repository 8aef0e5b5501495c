// eve_tools_tpm2_csr: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { csr } from '../cli/tools/csr.js';

main(csr, createServiceClient);
