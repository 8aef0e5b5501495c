// eve_tools_tpm2_listkeys: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { listkeys } from '../cli/tools/listkeys.js';

main(listkeys, createServiceClient);
