// eve_tools_tpm2_tcti: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { tcti } from '../cli/tools/tcti.js';

main(tcti, createServiceClient);
