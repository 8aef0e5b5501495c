// eve-tpm-verify: the app's cloud side (see docs/VERIFIER.md).
import { removePendingTemps } from '../cli/output.js';
import { PROG, runVerify } from '../cli/verify/program.js';

const onSignal = (sig: NodeJS.Signals): void => {
  // makecredential writes through a temp file: leave none behind.
  removePendingTemps();
  process.stderr.write(`${PROG}: interrupted (${sig}); nothing was written\n`);
  process.exit(sig === 'SIGINT' ? 130 : 143);
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
// A closed stdout (`| head`) is not worth a stack trace, and never a success.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(1);
});

runVerify(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`${PROG}: unexpected error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
