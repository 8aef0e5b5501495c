// eve_tools_tpm2_ekpub: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { ekpub } from '../cli/tools/ekpub.js';

main(ekpub, createServiceClient);
