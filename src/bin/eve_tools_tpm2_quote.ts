// eve_tools_tpm2_quote: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { quote } from '../cli/tools/quote.js';

main(quote, createServiceClient);
