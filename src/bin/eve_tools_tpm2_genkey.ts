// eve_tools_tpm2_genkey: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { genkey } from '../cli/tools/genkey.js';

main(genkey, createServiceClient);
