// eve-tpm-vtpmd: the guest's TPM device through the kernel's vTPM proxy (see docs/FIREWALL.md).
import { PROG, runVtpmd } from '../guest/vtpmd.js';

const stop = new AbortController();
// The signal's name is the reason: the daemon logs why it stopped.
process.once('SIGTERM', () => stop.abort('SIGTERM'));
process.once('SIGINT', () => stop.abort('SIGINT'));

runVtpmd(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: stop.signal }).then(
  (code) => {
    // The addon's poll watcher is gone by now, but a channel may hold sockets: exit outright.
    process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`${PROG}: unexpected error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
