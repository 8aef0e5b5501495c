// eve_tools_tpm2_capabilities: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { capabilities } from '../cli/tools/capabilities.js';

main(capabilities, createServiceClient);
