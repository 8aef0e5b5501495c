/**
 * How csr and cert reach their X.509 code (x509-key.ts, and through it @peculiar/x509, ~830 kB
 * bundled). Their own executables provide it (src/bin/eve_tools_tpm2_{csr,cert}.ts); the
 * multi-call eve-tools.cjs does not, so it stays small enough for cloud-init user-data (a
 * literal import() here would be inlined into that bundle by esbuild). No tool loads it before
 * a CSR or certificate is made.
 */
import { CliError, EXIT } from '../errors.js';

export type X509Tools = typeof import('./x509-key.js');

let loader: (() => Promise<X509Tools>) | undefined;

/** Called by the executables that carry the X.509 code (and by tests); undefined takes it away. */
export function provideX509(load: (() => Promise<X509Tools>) | undefined): void {
  loader = load;
}

export function loadX509(command: string): Promise<X509Tools> {
  if (!loader) {
    return Promise.reject(
      new CliError(
        `this build of the tools (eve-tools.cjs, kept small for cloud-init user-data) leaves the X.509 code out: run ${command}.cjs from the release (deploy/install.sh installs it)`,
        EXIT.UNSUPPORTED,
        'UNSUPPORTED',
      ),
    );
  }
  return loader();
}
