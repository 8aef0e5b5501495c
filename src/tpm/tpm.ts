/**
 * The generic executor: runs any command descriptor over a transport. It marshals the frame
 * (password session for empty auth unless the caller supplies a session), sends it, retries
 * with bounded back-off while the TPM says RETRY / YIELDED / TESTING, and decodes the
 * response strictly. One instance per transport; the transport serializes commands.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  prepareCommand,
  responseCode,
  type CallOptions,
  type AuthResponse,
  type AuthArg,
  type AuthHandleName,
  type AnyCommand,
  type CommandInput,
  type CommandOutput,
} from './command.js';
import { TpmError, isRetryable } from './rc.js';
import type { SendOptions, Transport } from './transport/types.js';

export interface RunOptions extends SendOptions, CallOptions {}

/**
 * What runs TPM commands, as every operation (src/tpm/ops) and the service take it: `Tpm` over
 * a transport, or a wrapper that adds a policy (the service's queue jobs) around another runner.
 */
export interface TpmRunner {
  /** Runs one command and returns its response handles and parameters. */
  run<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts?: RunOptions & { auth?: Partial<Record<AuthHandleName<C>, AuthArg>> },
  ): Promise<CommandOutput<C>>;
  /** As `run`, also returning the response's authorization area. */
  runWithAuths<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts?: RunOptions,
  ): Promise<{ output: CommandOutput<C>; auths: AuthResponse[] }>;
  /**
   * The TPM connection the runner ends at: facts about that TPM (its input buffer size) may be
   * cached under it. A wrapper gives its inner runner's.
   */
  readonly connection: object;
}

export interface TpmOptions {
  /** How many times to re-send after RETRY/YIELDED/TESTING (default 6). */
  maxRetries?: number;
  /** First back-off delay in ms; doubles each time, capped at 1 s (default 20). */
  retryDelayMs?: number;
  /** Observer for every command/response exchanged (for tracing): it may keep the frames, never write into them. */
  onExchange?: (e: { command: string; request: Uint8Array; response?: Uint8Array; error?: unknown; ms: number }) => void;
}

export class Tpm implements TpmRunner {
  private readonly maxRetries: number;
  private readonly retryDelayMs: number;

  constructor(
    readonly transport: Transport,
    private readonly options: TpmOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 6;
    this.retryDelayMs = options.retryDelayMs ?? 20;
  }

  /** The transport: one TPM connection. */
  get connection(): object {
    return this.transport;
  }

  /** Runs one command and returns its response handles and parameters. */
  async run<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts: RunOptions & { auth?: Partial<Record<AuthHandleName<C>, AuthArg>> } = {},
  ): Promise<CommandOutput<C>> {
    return (await this.runWithAuths(cmd, input, opts)).output;
  }

  /** As `run`, also returning the response's authorization area. */
  async runWithAuths<C extends AnyCommand>(
    cmd: C,
    input: CommandInput<C>,
    opts: RunOptions = {},
  ): Promise<{ output: CommandOutput<C>; auths: AuthResponse[] }> {
    const prepared = prepareCommand(cmd, input, opts);
    const response = await this.exchange(cmd.name, prepared.request, opts);
    // A fresh response is ours (onExchange only looks): byte fields may be views into it.
    const owned = this.transport.freshResponses === true;
    try {
      return prepared.decode(response, owned);
    } catch (e) {
      if (e instanceof TpmError) annotate(e, cmd);
      throw e;
    }
  }

  /**
   * Sends a command frame the caller marshalled (e.g. one frame refilled for a long run of the
   * same command) as `run` sends its own: again while the TPM answers RETRY / YIELDED /
   * TESTING, each exchange reported to `onExchange` under `command` (the descriptor's name).
   * The response is returned undecoded: checking it is the caller's job. Observers are handed
   * `request` itself: a caller that refills its frame afterwards changes what they were shown.
   */
  async exchange(command: string, request: Uint8Array, opts: SendOptions = {}): Promise<Uint8Array> {
    const sendOpts: SendOptions = { signal: opts.signal, timeoutMs: opts.timeoutMs };
    let delay = this.retryDelayMs;
    for (let attempt = 0; ; attempt++) {
      const t0 = performance.now();
      let response: Uint8Array;
      try {
        response = await this.transport.send(request, sendOpts);
      } catch (error) {
        this.options.onExchange?.({ command, request, error, ms: performance.now() - t0 });
        throw error;
      }
      this.options.onExchange?.({ command, request, response, ms: performance.now() - t0 });
      const rc = responseCode(response);
      // Success first: decoding a response code costs more than a fast TPM's answer.
      if (rc === undefined || rc === 0 || !isRetryable(rc) || attempt >= this.maxRetries) return response;
      opts.signal?.throwIfAborted();
      await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : undefined);
      delay = Math.min(delay * 2, 1000);
    }
  }
}

/** Names the handle/parameter/session a format-one error points at (go-tpm style). */
function annotate(e: TpmError, cmd: AnyCommand): void {
  if (e.index === undefined) return;
  let subject: string | undefined;
  if (e.kind === 'handle') subject = cmd.handles[e.index - 1]?.name;
  else if (e.kind === 'parameter') {
    const meta = cmd.params.meta;
    if (meta.kind === 'struct') subject = Object.keys(meta.fields)[e.index - 1];
  } else if (e.kind === 'session') {
    const h = cmd.handles.filter((x) => x.auth === 'auth')[e.index - 1];
    subject = h ? `authorization of ${h.name}` : undefined;
  }
  if (subject) (e as { subject?: string }).subject = subject;
}
