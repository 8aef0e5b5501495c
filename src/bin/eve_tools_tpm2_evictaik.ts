// eve_tools_tpm2_evictaik: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { evictaik } from '../cli/tools/evictaik.js';

main(evictaik, createServiceClient);
