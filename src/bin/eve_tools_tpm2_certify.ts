// eve_tools_tpm2_certify: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { certify } from '../cli/tools/certify.js';

main(certify, createServiceClient);
