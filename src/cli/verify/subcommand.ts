/** The shape of one `eve-tpm-verify` subcommand. */
import type { Command } from 'commander';
import type { VerifyIO } from './input.js';

export interface Subcommand {
  name: string;
  summary: string;
  /** Adds the options and the help text (with an example). */
  configure(cmd: Command): void;
  /** Runs with the parsed options; prints the result and returns the exit code. */
  run(opts: Record<string, unknown>, io: VerifyIO, prog: string): Promise<number>;
}

/** A string option's value, or undefined (commander gives strings for `<value>` options). */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
