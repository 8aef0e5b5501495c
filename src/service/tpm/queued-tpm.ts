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
 *   did not flush, unless kept on purpose (Transients.keep), is swept when the job ends;
 * - when every object slot is taken, it has the slot lender (the object cache) free one before
 *   a command that loads an object, or after one the TPM refused with TPM_RC_OBJECT_MEMORY.
 *
 * No command codes are special-cased here: a new descriptor that declares its effects is
 * accounted for as it is (StartAuthSession's `sessionHandle` is known to be no object).
 */
import {
  TPM_RC,
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
    if (cmd.creates.length > 0 && this.transients.lender) await this.makeRoom(cmd);
    let r: { output: CommandOutput<C>; auths: AuthResponse[] };
    try {
      r = await this.inner.runWithAuths(cmd, input, withoutSignal(opts));
    } catch (e) {
      this.failed(cmd, input, e);
      // Some commands need an object slot for a moment without declaring one (TPM2_Create
      // builds the new object in a free slot): the lender frees one and the command runs again.
      // A refused command changed nothing in the TPM, its sessions included.
      if (!outOfObjectMemory(e) || !(await this.transients.lender?.reclaim(this))) throw e;
      return this.runWithAuths(cmd, input, opts);
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

  /**
   * Before a command that loads an object: if every object slot the TPM guarantees is taken
   * (kept across jobs, or loaded by this job), the lender (object cache) frees one of its own.
   */
  private async makeRoom(cmd: AnyCommand): Promise<void> {
    const lender = this.transients.lender!;
    const slots = lender.slots;
    if (slots === undefined || cmd.creates.every((n) => n === SESSION_HANDLE)) return;
    while (this.loadedObjects() >= slots && (await lender.reclaim(this))) {
      // one slot freed per round
    }
  }

  /** Transient objects loaded now: kept ones and this job's own (sessions are not objects). */
  private loadedObjects(): number {
    let n = 0;
    for (const h of this.transients.kept) if (isTransientObject(h)) n++;
    if (this.open) for (const h of this.open) if (isTransientObject(h) && !this.transients.kept.has(h)) n++;
    return n;
  }

  private succeeded(cmd: AnyCommand, input: unknown, output: unknown, opts: RunOptions): void {
    const out = output as Record<string, unknown>;
    for (const name of cmd.creates) {
      const h = out[name] as number;
      // A handle given out again while kept: the TPM lost what was kept there (restarted).
      if (this.transients.kept.has(h)) this.transients.lender?.reissued(h);
      (this.open ??= new Set()).add(h);
    }
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

function outOfObjectMemory(e: unknown): boolean {
  return e instanceof TpmError && e.is(TPM_RC.OBJECT_MEMORY);
}

/** StartAuthSession's response handle: a session, which takes no object slot. */
const SESSION_HANDLE = 'sessionHandle';

/** TPM_HT_TRANSIENT (0x80xxxxxx), compared as numbers: handles are UINT32 ≥ 2^31. */
function isTransientObject(h: number): boolean {
  return h >= 0x80000000 && h <= 0x80ffffff;
}

/** Whether a command may load or flush anything (checked first: most commands do neither). */
function hasEffects(cmd: AnyCommand, opts: RunOptions): boolean {
  return cmd.creates.length > 0 || cmd.flushes.length > 0 || opts.auth !== undefined || opts.sessions !== undefined;
}

/** The job's signal guards between commands; a command already sent is never cut off. */
function withoutSignal(opts: RunOptions): RunOptions {
  return opts.signal === undefined ? opts : { ...opts, signal: undefined };
}
