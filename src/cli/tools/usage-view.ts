/**
 * How eve_tools_usage shows a reading: a table, or one line of key=value for logs, with CPU %
 * and rates over the interval since the previous reading (none for the first).
 */
import type { Usage } from '../../service/protocol/messages.js';

const KIB = 1024;
export function bytes(n: number): string {
  if (n < KIB) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / KIB;
  let i = 0;
  while (v >= KIB && i < units.length - 1) {
    v /= KIB;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** What changed between two readings of the same app. */
export interface Interval {
  seconds: number;
  /** CPU used over the interval, % of one CPU. */
  cpuPercent?: number;
  rxPerSec?: number;
  txPerSec?: number;
  readPerSec?: number;
  writePerSec?: number;
  /** TPM time the app used over the interval (ms). */
  tpmMs?: number;
}

export function intervalOf(prev: Usage | undefined, cur: Usage): Interval | undefined {
  if (!prev) return undefined;
  const seconds = (Date.parse(cur.timestamp) - Date.parse(prev.timestamp)) / 1000;
  if (!(seconds > 0)) return undefined;
  const rate = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || b < a ? undefined : (b - a) / seconds);
  const cpu = (u: Usage): number | undefined => (u.cgroup.available && u.cgroup.cpu.available ? u.cgroup.cpu.usageUsec : undefined);
  const net = (u: Usage, k: 'rxBytes' | 'txBytes'): number | undefined => (u.network.available ? u.network[k] : undefined);
  const io = (u: Usage, k: 'readBytes' | 'writeBytes'): number | undefined => (u.cgroup.available && u.cgroup.io.available ? u.cgroup.io[k] : undefined);
  const out: Interval = { seconds };
  const c = rate(cpu(prev), cpu(cur));
  if (c !== undefined) out.cpuPercent = c / 1e4; // µs per s → % of one CPU
  const set = (k: keyof Omit<Interval, 'seconds' | 'cpuPercent'>, v: number | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('rxPerSec', rate(net(prev, 'rxBytes'), net(cur, 'rxBytes')));
  set('txPerSec', rate(net(prev, 'txBytes'), net(cur, 'txBytes')));
  set('readPerSec', rate(io(prev, 'readBytes'), io(cur, 'readBytes')));
  set('writePerSec', rate(io(prev, 'writeBytes'), io(cur, 'writeBytes')));
  // Counted from the service's start: a restarted service (since moved) gives no interval figure.
  if (prev.tpm.since === cur.tpm.since && cur.tpm.tpmTimeMs >= prev.tpm.tpmTimeMs) out.tpmMs = cur.tpm.tpmTimeMs - prev.tpm.tpmTimeMs;
  return out;
}

const perSec = (v: number | undefined): string => (v === undefined ? '' : ` (${bytes(Math.round(v))}/s)`);

export function usageTable(u: Usage, iv: Interval | undefined): string {
  const rows: Array<[string, string]> = [];
  const cg = u.cgroup;
  if (!cg.available) rows.push(['cgroup', cg.reason]);
  else {
    const { cpu, memory, io, pids } = cg;
    const pct = iv?.cpuPercent === undefined ? '' : `, ${iv.cpuPercent.toFixed(1)} % over ${iv.seconds.toFixed(1)} s`;
    const thr = cpu.available && cpu.nrThrottled !== undefined ? `, throttled ${cpu.nrThrottled} times (${((cpu.throttledUsec ?? 0) / 1e6).toFixed(2)} s)` : '';
    rows.push(['CPU', cpu.available ? `${(cpu.usageUsec / 1e6).toFixed(2)} s (user ${(cpu.userUsec / 1e6).toFixed(2)}, system ${(cpu.systemUsec / 1e6).toFixed(2)})${pct}${thr}` : cpu.reason]);
    rows.push(['memory', memory.available ? `${bytes(memory.currentBytes)} now, peak ${memory.peakBytes === undefined ? 'not given by this kernel' : bytes(memory.peakBytes)}` : memory.reason]);
    rows.push(['disk', io.available ? `read ${bytes(io.readBytes)}${perSec(iv?.readPerSec)}, written ${bytes(io.writeBytes)}${perSec(iv?.writePerSec)}` : io.reason]);
    rows.push(['tasks', pids.available ? String(pids.current) : pids.reason]);
  }
  const net = u.network;
  if (!net.available) rows.push(['network', net.reason]);
  else {
    rows.push(['network', `received ${bytes(net.rxBytes)}${perSec(iv?.rxPerSec)}, sent ${bytes(net.txBytes)}${perSec(iv?.txPerSec)}`]);
    for (const i of net.interfaces) if (!i.available) rows.push([`  ${i.name}`, i.reason]);
  }
  const t = u.tpm;
  const reqs = t.requests.reduce((n, r) => n + r.count, 0);
  const refused = t.requests.reduce((n, r) => n + r.refused, 0);
  rows.push(['TPM requests', `${reqs} (${refused} refused) since ${t.since}`]);
  rows.push(['TPM time', `${t.tpmTimeMs.toFixed(1)} ms${iv?.tpmMs === undefined ? '' : `, ${iv.tpmMs.toFixed(1)} ms over ${iv.seconds.toFixed(1)} s`}`]);
  rows.push(['TPM keys', `${t.keys.held} of ${t.keys.max} (${t.keys.left} left)`]);
  rows.push(['queue waits', `${t.queueWaits.count} (total ${t.queueWaits.totalMs.toFixed(1)} ms, longest ${t.queueWaits.maxMs.toFixed(1)} ms)`]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return `${u.tenant} at ${u.timestamp}\n${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}`;
}

/** One line of key=value (figures not there are left out), for a log or a pipe. */
export function usageLine(u: Usage, iv: Interval | undefined): string {
  const f: string[] = [u.timestamp];
  const cg = u.cgroup.available ? u.cgroup : undefined;
  if (cg?.cpu.available) f.push(`cpu_s=${(cg.cpu.usageUsec / 1e6).toFixed(3)}`);
  if (iv?.cpuPercent !== undefined) f.push(`cpu_pct=${iv.cpuPercent.toFixed(1)}`);
  if (cg?.memory.available) {
    f.push(`mem_bytes=${cg.memory.currentBytes}`);
    if (cg.memory.peakBytes !== undefined) f.push(`mem_peak_bytes=${cg.memory.peakBytes}`);
  }
  if (u.network.available) f.push(`rx_bytes=${u.network.rxBytes}`, `tx_bytes=${u.network.txBytes}`);
  if (iv?.rxPerSec !== undefined) f.push(`rx_bps=${Math.round(iv.rxPerSec)}`);
  if (iv?.txPerSec !== undefined) f.push(`tx_bps=${Math.round(iv.txPerSec)}`);
  if (cg?.io.available) f.push(`read_bytes=${cg.io.readBytes}`, `write_bytes=${cg.io.writeBytes}`);
  f.push(`tpm_requests=${u.tpm.requests.reduce((n, r) => n + r.count, 0)}`, `tpm_ms=${u.tpm.tpmTimeMs}`);
  if (iv?.tpmMs !== undefined) f.push(`tpm_ms_interval=${iv.tpmMs.toFixed(3)}`);
  f.push(`keys=${u.tpm.keys.held}/${u.tpm.keys.max}`);
  return f.join(' ');
}
