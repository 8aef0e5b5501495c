/**
 * The TPM as the library's high-level operations (createAk, withLoadedKey, tpmHash, ...) see
 * it inside a queue job: GuardedTpm checks the request's AbortSignal before each command, so a
 * deadline or a vanished client stops the operation between commands. A command in flight is
 * never abandoned: on a TPM without a resource manager (swtpm, /dev/tpm0) a command cut off
 * mid-way can leave an object loaded that nobody will flush. Flushes always run, so the
 * library's cleanup paths complete.
 */
import {
  FlushContext,
  Tpm,
  type AuthResponse,
  type CommandDescriptor,
  type CommandInput,
  type CommandOutput,
  type RunOptions,
} from '../../tpm/index.js';

type AnyCommand = CommandDescriptor<any, any, any, any>;

export class GuardedTpm extends Tpm {
  constructor(
    private readonly inner: Tpm,
    private readonly signal: AbortSignal | undefined,
  ) {
    super(inner.transport);
  }

  override runWithAuths<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts: RunOptions = {},
  ): Promise<{ output: CommandOutput<C>; auths: AuthResponse[] }> {
    if (cmd.code !== FlushContext.code) this.signal?.throwIfAborted();
    const { signal: _ignored, ...rest } = opts;
    return this.inner.runWithAuths(cmd, input, rest);
  }
}

/** Transient objects the service keeps loaded across jobs (loaded hash sequences): the leftover sweep keeps them. */
export class LiveTransients {
  readonly handles = new Set<number>();
}
