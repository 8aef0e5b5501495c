// eve_tools_tpm2_cert: see docs/TOOLS.md.
import { createServiceClient } from '../cli/client.js';
import { main } from '../cli/run.js';
import { cert } from '../cli/tools/cert.js';
import { provideX509 } from '../cli/tools/x509-loader.js';

// This executable carries the X.509 code (eve-tools.cjs does not); it is loaded on first use only.
provideX509(() => import('../cli/tools/x509-key.js'));
main(cert, createServiceClient);
