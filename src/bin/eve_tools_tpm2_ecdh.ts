// eve_tools_tpm2_ecdh: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { ecdh } from '../cli/tools/ecdh.js';

main(ecdh, createServiceClient);
