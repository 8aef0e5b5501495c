// eve_tools_usage: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { usage } from '../cli/tools/usage.js';

main(usage, createServiceClient);
