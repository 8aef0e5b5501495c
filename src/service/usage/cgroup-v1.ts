/**
 * The cgroup v1 provider (EVE mounts v1 today): the app's cgroup in each controller's own
 * hierarchy, read into the same fields as v2 (Documentation/admin-guide/cgroup-v1/*.rst):
 * cpuacct (usage in ns; user/system in ns, or in USER_HZ ticks on kernels before 4.7), cpu
 * (cpu.stat throttling, ns), memory (usage_in_bytes, max_usage_in_bytes, memory.stat),
 * blkio (io_service_bytes / io_serviced, "MAJ:MIN Op N") and pids (pids.current).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupUsage, CpuUsage, IoDeviceUsage, IoUsage, MemoryUsage, PidsUsage, UsageMissing } from '../protocol/messages.js';
import { bigCounter, flatKeyed, missing, readText, safeNumber, singleCounter, type Read } from './counters.js';

export const V1_CONTROLLERS = ['cpuacct', 'cpu', 'memory', 'blkio', 'pids'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];
/** The app's directory in each controller's hierarchy; absent: no hierarchy has that controller. */
export type V1Dirs = Partial<Record<V1Controller, string>>;

/**
 * USER_HZ, the unit of cpuacct.stat: 100 on every architecture Linux runs EVE on (x86, arm64,
 * riscv); Node cannot ask sysconf(_SC_CLK_TCK). Used only where cpuacct.usage_user is missing.
 */
export const USER_HZ = 100;

/** The blkio files, most exact first: throttle-layer counts (every bio), subtree included. */
const BLKIO_FILES = [
  ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_serviced_recursive'],
  ['blkio.throttle.io_service_bytes', 'blkio.throttle.io_serviced'],
  ['blkio.io_service_bytes_recursive', 'blkio.io_serviced_recursive'],
  ['blkio.io_service_bytes', 'blkio.io_serviced'],
] as const;

const nsToUsec = (ns: bigint): number | undefined => safeNumber(ns / 1000n);

/** The file of a controller, or why it is not there. */
async function file(dirs: V1Dirs, c: V1Controller, name: string): Promise<Read<string>> {
  const dir = dirs[c];
  if (dir === undefined) return { ok: false, reason: `no cgroup v1 hierarchy has the ${c} controller` };
  return readText(join(dir, name), name);
}

export async function readCgroupV1(dirs: V1Dirs): Promise<CgroupUsage | UsageMissing> {
  // Each controller's directory on its own: one missing leaves only its figures out.
  const present = await Promise.all(V1_CONTROLLERS.map(async (c) => [c, dirs[c] !== undefined && (await isDir(dirs[c]))] as const));
  if (!present.some(([, p]) => p)) return missing("the app's cgroup does not exist (is the app running?)");
  const gone = new Set(present.filter(([c, p]) => !p && dirs[c] !== undefined).map(([c]) => c));
  const why = (c: V1Controller): UsageMissing => missing(`the app's cgroup does not exist in the ${c} hierarchy`);
  const [cpu, memory, io, pids] = await Promise.all([
    gone.has('cpuacct') ? why('cpuacct') : readCpu(dirs, gone.has('cpu')),
    gone.has('memory') ? why('memory') : readMemory(dirs),
    gone.has('blkio') ? why('blkio') : readIo(dirs),
    gone.has('pids') ? why('pids') : readPids(dirs),
  ]);
  return { available: true, cgroupVersion: 1, cpu, memory, io, pids };
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** "key value" lines with exact UINT64 values (flatKeyed refuses what passes 2^53: ns counters do). */
function bigKeyed(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_0-9]+) (\S+)$/.exec(line.trim());
    const n = m ? bigCounter(m[2]!) : undefined;
    if (m && n !== undefined) out.set(m[1]!, n);
  }
  return out;
}

async function readCpu(dirs: V1Dirs, cpuGone: boolean): Promise<CpuUsage | UsageMissing> {
  const [usage, user, sys, st, throttle] = await Promise.all([
    file(dirs, 'cpuacct', 'cpuacct.usage'),
    file(dirs, 'cpuacct', 'cpuacct.usage_user'),
    file(dirs, 'cpuacct', 'cpuacct.usage_sys'),
    file(dirs, 'cpuacct', 'cpuacct.stat'),
    cpuGone ? undefined : file(dirs, 'cpu', 'cpu.stat'),
  ]);
  if (!usage.ok) return missing(usage.reason);
  const ns = bigCounter(usage.value);
  const usageUsec = ns === undefined ? undefined : nsToUsec(ns);
  if (usageUsec === undefined) return missing(`cpuacct.usage does not hold a counter (${JSON.stringify(usage.value.trim().slice(0, 40))})`);
  let userUsec: number | undefined;
  let systemUsec: number | undefined;
  const userNs = user.ok ? bigCounter(user.value) : undefined;
  const sysNs = sys.ok ? bigCounter(sys.value) : undefined;
  if (userNs !== undefined && sysNs !== undefined) {
    userUsec = nsToUsec(userNs);
    systemUsec = nsToUsec(sysNs);
  } else if (st.ok) {
    // Ticks of USER_HZ: 1 tick = 10^6 / USER_HZ µs.
    const k = flatKeyed(st.value);
    const u = k.get('user');
    const s = k.get('system');
    if (u !== undefined && s !== undefined) {
      userUsec = (u * 1_000_000) / USER_HZ;
      systemUsec = (s * 1_000_000) / USER_HZ;
    }
  }
  if (userUsec === undefined || systemUsec === undefined) return missing(st.ok ? 'cpuacct.stat lacks user or system' : st.reason);
  const out: CpuUsage = { available: true, usageUsec, userUsec, systemUsec };
  // cpu.stat of the cpu controller (CFS bandwidth): present wherever that controller is mounted.
  if (throttle?.ok) {
    const k = bigKeyed(throttle.value);
    const nrPeriods = k.get('nr_periods');
    const nrThrottled = k.get('nr_throttled');
    const throttledNs = k.get('throttled_time');
    if (nrPeriods !== undefined && safeNumber(nrPeriods) !== undefined) out.nrPeriods = Number(nrPeriods);
    if (nrThrottled !== undefined && safeNumber(nrThrottled) !== undefined) out.nrThrottled = Number(nrThrottled);
    const t = throttledNs === undefined ? undefined : nsToUsec(throttledNs);
    if (t !== undefined) out.throttledUsec = t;
  }
  return out;
}

async function readMemory(dirs: V1Dirs): Promise<MemoryUsage | UsageMissing> {
  const [usage, max, st] = await Promise.all([
    file(dirs, 'memory', 'memory.usage_in_bytes'),
    file(dirs, 'memory', 'memory.max_usage_in_bytes'),
    file(dirs, 'memory', 'memory.stat'),
  ]);
  const c = singleCounter(usage, 'memory.usage_in_bytes');
  if (!c.ok) return missing(c.reason);
  const out: MemoryUsage = { available: true, currentBytes: c.value };
  const p = singleCounter(max, 'memory.max_usage_in_bytes');
  if (p.ok) out.peakBytes = p.value;
  if (st.ok) {
    // total_*: the subtree, as usage_in_bytes counts it; the cgroup's own where there is no total.
    const k = flatKeyed(st.value);
    const anon = k.get('total_rss') ?? k.get('rss');
    const cache = k.get('total_cache') ?? k.get('cache');
    if (anon !== undefined) out.anonBytes = anon;
    if (cache !== undefined) out.fileBytes = cache;
  }
  return out;
}

/** "MAJ:MIN Op N" lines (Op: Read, Write, Sync, Async, Discard, Total); the last "Total N" is skipped. */
function perDevice(text: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3 || !/^[0-9]+:[0-9]+$/.test(f[0]!)) continue;
    const n = safeNumber(bigCounter(f[2]!) ?? -1n);
    if (n === undefined || n < 0) continue;
    let d = out.get(f[0]!);
    if (!d) out.set(f[0]!, (d = new Map()));
    d.set(f[1]!, n);
  }
  return out;
}

async function readIo(dirs: V1Dirs): Promise<IoUsage | UsageMissing> {
  let first: string | undefined;
  for (const [bytesFile, iosFile] of BLKIO_FILES) {
    const bytes = await file(dirs, 'blkio', bytesFile);
    if (!bytes.ok) {
      first ??= bytes.reason;
      continue;
    }
    const ios = await file(dirs, 'blkio', iosFile);
    const counts = ios.ok ? perDevice(ios.value) : new Map<string, Map<string, number>>();
    const out: IoUsage = { available: true, readBytes: 0, writeBytes: 0, devices: [] };
    for (const [device, b] of perDevice(bytes.value)) {
      const n = counts.get(device);
      const d: IoDeviceUsage = {
        device,
        readBytes: b.get('Read') ?? 0,
        writeBytes: b.get('Write') ?? 0,
        readIos: n?.get('Read') ?? 0,
        writeIos: n?.get('Write') ?? 0,
        ...(b.has('Discard') ? { discardBytes: b.get('Discard')! } : {}),
        ...(n?.has('Discard') ? { discardIos: n.get('Discard')! } : {}),
      };
      out.devices.push(d);
      out.readBytes += d.readBytes;
      out.writeBytes += d.writeBytes;
    }
    return out;
  }
  return missing(first!);
}

async function readPids(dirs: V1Dirs): Promise<PidsUsage | UsageMissing> {
  const c = singleCounter(await file(dirs, 'pids', 'pids.current'), 'pids.current');
  return c.ok ? { available: true, current: c.value } : missing(c.reason);
}
