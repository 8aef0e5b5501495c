// eve_tools_tpm2_ekcert: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { ekcert } from '../cli/tools/ekcert.js';

main(ekcert, createServiceClient);
