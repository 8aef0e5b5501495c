/**
 * When a request must stop: its deadline passed (504 DEADLINE) or its client went away. Both
 * abort one signal that the body readers, the TPM queue and the key manager watch.
 */
import { deadline } from '../protocol/errors.js';
import { ClientGoneError } from './body.js';

export class RequestSignal {
  private readonly ctl = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  get signal(): AbortSignal {
    return this.ctl.signal;
  }

  /** Starts the deadline (once the caller is known: the deadline depends on the request). */
  startDeadline(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.ctl.abort(deadline(`the request did not complete within its deadline of ${ms} ms`)), ms);
  }

  /** The response is closed: stop the deadline; aborts when it closed before it was finished. */
  closed(finished: boolean): void {
    clearTimeout(this.timer);
    if (!finished) this.ctl.abort(new ClientGoneError());
  }
}
