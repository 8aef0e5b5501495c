// eve_tools_tpm2_sign: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { sign } from '../cli/tools/sign.js';

main(sign, createServiceClient);
