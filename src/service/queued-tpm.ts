/**
 * Two views of the TPM for the library's high-level operations (createAk, withLoadedKey,
 * tpmHash, ...), which take a `Tpm`:
 *
 * - GuardedTpm, inside a queue job: before each command it checks the request's AbortSignal,
 *   so a deadline or a vanished client stops the operation between commands. A command in
 *   flight is never abandoned: on a TPM without a resource manager (swtpm, /dev/tpm0) a
 *   command cut off mid-way can leave an object loaded that nobody will flush. Flushes always
 *   run, so the library's cleanup paths complete.
 * - PerCommandTpm: every command is its own queue job. A streamed hash uses it, so the TPM is
 *   held for one SequenceUpdate at a time and never while the client's next bytes are awaited.
 */
import {
  FlushContext,
  HashSequenceStart,
  SequenceComplete,
  Tpm,
  type AuthResponse,
  type CommandDescriptor,
  type CommandInput,
  type CommandOutput,
  type RunOptions,
} from '../tpm/index.js';
import type { TpmQueue } from './queue.js';

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

/** Transient objects the service is keeping loaded across jobs (open hash sequences). */
export class LiveTransients {
  readonly handles = new Set<number>();
}

export class PerCommandTpm extends Tpm {
  constructor(
    private readonly queue: TpmQueue,
    private readonly tenant: string,
    private readonly signal: AbortSignal | undefined,
    private readonly live: LiveTransients,
  ) {
    super(queue.tpm.transport);
  }

  override runWithAuths<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts: RunOptions = {},
  ): Promise<{ output: CommandOutput<C>; auths: AuthResponse[] }> {
    const cleanup = cmd.code === FlushContext.code;
    const handles = this.live.handles;
    // Bookkeeping inside the job, so the leftover sweep (another job) never sees it half done.
    const job = async (tpm: Tpm): Promise<{ output: CommandOutput<C>; auths: AuthResponse[] }> => {
      try {
        const r = await new GuardedTpm(tpm, cleanup ? undefined : this.signal).runWithAuths(cmd, input, opts);
        if (cmd.code === HashSequenceStart.code) handles.add((r.output as { sequenceHandle: number }).sequenceHandle);
        if (cmd.code === SequenceComplete.code) handles.delete((input as { sequenceHandle: number }).sequenceHandle);
        return r;
      } finally {
        if (cleanup) handles.delete((input as { flushHandle: number }).flushHandle);
      }
    };
    return this.queue.submit(this.tenant, cmd.name, job, cleanup ? { lane: 'cleanup' } : this.signal ? { signal: this.signal } : {});
  }
}
