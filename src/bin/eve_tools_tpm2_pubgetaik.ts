// eve_tools_tpm2_pubgetaik: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { pubgetaik } from '../cli/tools/pubgetaik.js';

main(pubgetaik, createServiceClient);
