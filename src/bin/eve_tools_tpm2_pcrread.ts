// eve_tools_tpm2_pcrread: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { pcrread } from '../cli/tools/pcrread.js';

main(pcrread, createServiceClient);
