/**
 * The TPM as a queue job sees it. The queue hands each job a JobTpm around its own runner:
 *
 * - it checks the job's AbortSignal before each command, so a deadline or a vanished client
 *   stops the operation between commands. A command in flight is never abandoned: on a TPM
 *   without a resource manager (swtpm, /dev/tpm0) a command cut off mid-way can leave an
 *   object loaded that nobody will flush. Commands that only flush always run, so the
 *   library's cleanup paths complete;
 * - it keeps the job's account of transient handles from the descriptors' declarations
 *   (`creates`, `flushes`, sessions ended without continueSession): what the job loaded and
 *   did not flush, unless kept on purpose (Transients.keep), is swept when the job ends.
 *
 * No command codes are special-cased here: a new descriptor that declares its effects is
 * accounted for as it is.
 */
import {
  TpmError,
  TpmTransportError,
  type AuthResponse,
  type AnyCommand,
  type CommandInput,
  type CommandOutput,
  type RunOptions,
  type TpmRunner,
} from '../../tpm/index.js';
import { flushedHandle, sessionEnds } from '../../tpm/command/descriptor.js';
import type { Transients } from './transients.js';

const NONE: readonly number[] = [];

export class JobTpm implements TpmRunner {
  /** Handles this job's commands loaded and have not flushed; made on the first one. */
  private open: Set<number> | undefined;
  /**
   * A command failed in the transport: the TPM may be gone or hung, so flushing the leftovers
   * now could only wait for timeouts. The maintenance sweep sees to them once the TPM answers.
   */
  transportFailed = false;
  private goneFn: ((handle: number) => void) | undefined;

  constructor(
    private readonly inner: TpmRunner,
    private readonly transients: Transients,
    private readonly signal: AbortSignal | undefined,
  ) {}

  get connection(): object {
    return this.inner.connection;
  }

  async run<C extends AnyCommand>(cmd: C, input: CommandInput<C>, opts: RunOptions = {}): Promise<CommandOutput<C>> {
    return (await this.runWithAuths(cmd, input, opts)).output;
  }

  async runWithAuths<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts: RunOptions = {},
  ): Promise<{ output: CommandOutput<C>; auths: AuthResponse[] }> {
    if (!cmd.onlyFlushes) this.signal?.throwIfAborted();
    let r: { output: CommandOutput<C>; auths: AuthResponse[] };
    try {
      r = await this.inner.runWithAuths(cmd, input, withoutSignal(opts));
    } catch (e) {
      this.failed(cmd, input, e);
      throw e;
    }
    if (hasEffects(cmd, opts)) this.succeeded(cmd, input, r.output, opts);
    return r;
  }

  /** What the job loaded and neither flushed nor handed to Transients.keep. */
  leftovers(): readonly number[] {
    let out: number[] | undefined;
    if (this.open) for (const h of this.open) if (!this.transients.kept.has(h)) (out ??= []).push(h);
    return out ?? NONE;
  }

  private succeeded(cmd: AnyCommand, input: unknown, output: unknown, opts: RunOptions): void {
    const out = output as Record<string, unknown>;
    for (const name of cmd.creates) (this.open ??= new Set()).add(out[name] as number);
    for (const f of cmd.flushes) this.gone(flushedHandle(f, input as Record<string, unknown>));
    sessionEnds(opts.auth, opts.sessions, (this.goneFn ??= (h) => this.gone(h))); // one closure per job at most
  }

  /** A flush-only command the TPM refused: the handle is not loaded (whatever it was). */
  private failed(cmd: AnyCommand, input: unknown, e: unknown): void {
    if (e instanceof TpmTransportError) this.transportFailed = true;
    if (!cmd.onlyFlushes || !(e instanceof TpmError)) return;
    for (const f of cmd.flushes) this.gone(flushedHandle(f, input as Record<string, unknown>));
  }

  private gone(handle: number): void {
    this.open?.delete(handle);
    this.transients.release(handle);
  }
}

/** Whether a command may load or flush anything (checked first: most commands do neither). */
function hasEffects(cmd: AnyCommand, opts: RunOptions): boolean {
  return cmd.creates.length > 0 || cmd.flushes.length > 0 || opts.auth !== undefined || opts.sessions !== undefined;
}

/** The job's signal guards between commands; a command already sent is never cut off. */
function withoutSignal(opts: RunOptions): RunOptions {
  return opts.signal === undefined ? opts : { ...opts, signal: undefined };
}
