// eve_tools_tpm2_rsadecrypt: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { rsadecrypt } from '../cli/tools/rsadecrypt.js';

main(rsadecrypt, createServiceClient);
