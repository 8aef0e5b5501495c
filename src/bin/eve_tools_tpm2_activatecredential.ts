// eve_tools_tpm2_activatecredential: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { activatecredential } from '../cli/tools/activatecredential.js';

main(activatecredential, createServiceClient);
