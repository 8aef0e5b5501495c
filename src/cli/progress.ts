/**
 * A one-line progress display on stderr for long uploads: bytes sent, rate, time left.
 *
 * Shown only when the stream is a terminal (never in logs or pipes) and only once the work has
 * lasted `delayMs`, so quick commands print nothing. The line is redrawn in place with `\r` and
 * padded with spaces instead of ANSI erase codes, so it works on any terminal, and it is wiped
 * when the work ends so the terminal is left as tpm2-tools would leave it.
 */

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export interface ProgressState {
  sent: number;
  /** Total bytes when known (a file), undefined for stdin. */
  total: number | undefined;
  elapsedMs: number;
  /** Everything is sent and we are waiting for the answer. */
  waiting: boolean;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/** `0:07`, `12:34`, `1:02:03`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export function formatProgress(label: string, st: ProgressState): string {
  const secs = st.elapsedMs / 1000;
  const rate = secs > 0 ? st.sent / secs : 0;
  const parts: string[] = [];
  if (st.total !== undefined && st.total > 0) {
    const pct = Math.min(100, Math.floor((st.sent / st.total) * 100));
    parts.push(`${formatBytes(st.sent)} / ${formatBytes(st.total)} (${pct}%)`);
  } else {
    parts.push(`${formatBytes(st.sent)} sent`);
  }
  parts.push(`${formatBytes(Math.round(rate))}/s`);
  if (st.waiting) {
    parts.push('waiting for the TPM');
  } else if (st.total !== undefined && rate > 0 && st.sent < st.total) {
    parts.push(`${formatDuration(((st.total - st.sent) / rate) * 1000)} left`);
  }
  return `${label}: ${parts.join(', ')}`;
}

export interface ProgressOptions {
  label: string;
  total: number | undefined;
  stream: ProgressStream;
  /** Force on/off; by default on exactly when `stream.isTTY`. */
  enabled?: boolean;
  delayMs?: number;
  intervalMs?: number;
  now?: () => number;
}

export class Progress {
  private readonly start: number;
  private sent = 0;
  private waiting = false;
  private shownWidth = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly enabled: boolean;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now;
    this.start = this.now();
    this.enabled = opts.enabled ?? opts.stream.isTTY === true;
    if (this.enabled) {
      const delay = opts.delayMs ?? 500;
      const interval = opts.intervalMs ?? 250;
      // A timer rather than drawing on each callback: the rate and time left keep moving even
      // while the service is slow to accept bytes, and redraws are capped at 4 a second.
      this.timer = setTimeout(() => {
        this.draw();
        this.timer = setInterval(() => this.draw(), interval);
        this.timer.unref();
      }, delay);
      this.timer.unref();
    }
  }

  /** Bytes handed to the service so far. */
  update(sent: number): void {
    this.sent = sent;
    if (this.opts.total !== undefined && sent >= this.opts.total) this.waiting = true;
  }

  /** All bytes are sent (the size of stdin is only known now). */
  sentAll(): void {
    this.waiting = true;
  }

  /** Stops and wipes the line. */
  end(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.shownWidth > 0) {
      this.opts.stream.write(`\r${' '.repeat(this.shownWidth)}\r`);
      this.shownWidth = 0;
    }
  }

  /** The line as it would be drawn now (exposed for tests). */
  line(): string {
    return formatProgress(this.opts.label, {
      sent: this.sent,
      total: this.opts.total,
      elapsedMs: this.now() - this.start,
      waiting: this.waiting,
    });
  }

  private draw(): void {
    let text = this.line();
    const cols = this.opts.stream.columns;
    // Never wrap: a wrapped line cannot be redrawn with \r.
    if (cols && text.length >= cols) text = text.slice(0, Math.max(0, cols - 1));
    const pad = this.shownWidth > text.length ? ' '.repeat(this.shownWidth - text.length) : '';
    this.opts.stream.write(`\r${text}${pad}`);
    this.shownWidth = text.length;
  }
}
