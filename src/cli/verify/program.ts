/**
 * `eve-tpm-verify`: the app's cloud side (no TPM needed) — signature, quote, certify verification
 * and makecredential. Exit 0 only when every check holds; 1 not verified (or refused input);
 * 2 usage; 6 a file that cannot be read or written. Errors are one line on stderr.
 */
import { Command, CommanderError } from 'commander';
import pkg from '../../../package.json' with { type: 'json' };
import { CliError, EXIT, commanderLine } from '../errors.js';
import { certify } from './certify.js';
import { VERIFY_EXIT, type VerifyIO } from './input.js';
import { makecredential } from './makecredential.js';
import { quote } from './quote.js';
import { signature } from './signature.js';
import type { Subcommand } from './subcommand.js';

export const PROG = 'eve-tpm-verify';
export const SUBCOMMANDS: readonly Subcommand[] = [signature, quote, makecredential, certify];

const HELP = `
Exit status: 0 every check holds (makecredential: file written); 1 not verified, or an input
refused; 2 usage (a missing or bad option); 6 a file that cannot be read or written.
Every input is required: nothing missing is ever taken as verified.

Run '${PROG} SUBCOMMAND --help' for its options and an example.`;

function build(io: VerifyIO, done: (code: number) => void): Command {
  const out = {
    writeOut: (s: string) => void io.stdout.write(s),
    writeErr: (s: string) => void io.stderr.write(s),
    // Errors are printed by us, as one line.
    outputError: () => {},
  };
  const program = new Command(PROG)
    .description("Verify what an app's TPM attested, and make credentials for it (no TPM needed).")
    .version(`${PROG} ${(pkg as { version: string }).version}`, '-v, --version')
    .helpCommand(false)
    .exitOverride()
    .configureOutput(out)
    .addHelpText('after', HELP);
  for (const sub of SUBCOMMANDS) {
    const cmd = program.command(sub.name).description(sub.summary).helpOption('-h, --help', 'print this help and exit').allowExcessArguments(false);
    sub.configure(cmd);
    cmd.exitOverride().configureOutput(out);
    cmd.action(async (opts: Record<string, unknown>) => done(await sub.run(opts, io, PROG)));
  }
  return program;
}

/** Runs `eve-tpm-verify ARGS…`; returns the exit code. */
export async function runVerify(argv: string[], io: VerifyIO): Promise<number> {
  let code: number = VERIFY_EXIT.OK;
  const json = argv.includes('--json');
  try {
    if (argv.length === 0) throw new CliError(`a subcommand is required: ${SUBCOMMANDS.map((s) => s.name).join(', ')} (see --help)`, EXIT.USAGE, 'USAGE');
    await build(io, (c) => (code = c)).parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    let err: CliError;
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      err = new CliError(`${commanderLine(e)} (see --help)`, EXIT.USAGE, 'USAGE');
    } else if (e instanceof CliError) {
      err = e;
    } else {
      // A bug: still one line, and never "verified".
      err = new CliError(`unexpected error: ${e instanceof Error ? e.message : String(e)}`, EXIT.GENERAL, 'GENERAL');
    }
    io.stderr.write(`${PROG}: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
    if (json) io.stdout.write(`${JSON.stringify({ ok: false, error: { code: err.code, exitCode: err.exitCode, message: err.message } })}\n`);
    return err.exitCode;
  }
}
