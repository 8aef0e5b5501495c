/** What every benchmark group gets, and what it gives back. */

export interface Ctx {
  /** Project root. */
  root: string;
  /** Tiny counts: every group runs, nothing is meant to be a precise figure. */
  smoke: boolean;
  /** Set when `npx tsup` failed: groups needing dist/ report it. */
  buildError?: string;
  /** Progress line on stderr. */
  log(msg: string): void;
}

export type Cell = string | number;

export interface Table {
  columns: string[];
  rows: Cell[][];
  /** Text columns: every column left-aligned (default: first left, the rest right). */
  leftAligned?: boolean;
}

export interface GroupResult {
  id: number;
  title: string;
  tables: Table[];
  /** How to read the figures, what limits them, anything unexpected. */
  notes: string[];
  /** Everything measured (raw summaries), for the JSON file. */
  data: Record<string, unknown>;
  seconds?: number;
  /** 1-minute load average of the machine when the group started and when it ended. */
  loadAvg?: [number, number];
  error?: string;
}

export interface Group {
  id: number;
  title: string;
  run(ctx: Ctx): Promise<Omit<GroupResult, 'id' | 'title'>>;
}

/** Formats a ratio: 1.023× */
export const x = (r: number, digits = 3): string => (Number.isFinite(r) ? `${r.toFixed(digits)}×` : 'n/a');
/** Formats milliseconds. */
export const ms = (v: number): string => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) : 'n/a');
/** Formats a count per second with thousands separators. */
export const perSec = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
export const mib = (bytes: number): string => (Number.isFinite(bytes) ? (bytes / 1048576).toFixed(1) : 'n/a');
