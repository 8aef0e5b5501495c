// eve_tools_tpm2_genaik: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { genaik } from '../cli/tools/genaik.js';

main(genaik, createServiceClient);
