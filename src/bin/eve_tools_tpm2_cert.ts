// eve_tools_tpm2_cert: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { cert } from '../cli/tools/cert.js';

main(cert, createServiceClient);
