/**
 * The cgroup v2 provider (v1: cgroup-v1.ts; which one: cgroup-place.ts): what the kernel charges the app's cgroup (cpu.stat, memory.current,
 * memory.peak, memory.stat, io.stat, pids.current). Each file is read on its own: one missing
 * (its controller not enabled for the cgroup, an older kernel without memory.peak) leaves only
 * its figures out, with the reason.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupUsage, CpuUsage, IoUsage, MemoryUsage, PidsUsage, UsageMissing } from '../protocol/messages.js';
import { flatKeyed, missing, nestedKeyed, readText, singleCounter } from './counters.js';

const file = async (dir: string, name: string) => readText(join(dir, name), name);

export async function readCgroup(dir: string): Promise<CgroupUsage | UsageMissing> {
  try {
    if (!(await stat(dir)).isDirectory()) return missing("the app's cgroup is not a directory");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return missing(code === 'ENOENT' ? "the app's cgroup does not exist (is the app running?)" : `the app's cgroup cannot be read (${code ?? 'error'})`);
  }
  const [cpu, memory, io, pids] = await Promise.all([readCpu(dir), readMemory(dir), readIo(dir), readPids(dir)]);
  return { available: true, cgroupVersion: 2, cpu, memory, io, pids };
}

async function readCpu(dir: string): Promise<CpuUsage | UsageMissing> {
  const r = await file(dir, 'cpu.stat');
  if (!r.ok) return missing(r.reason);
  const k = flatKeyed(r.value);
  const usageUsec = k.get('usage_usec');
  const userUsec = k.get('user_usec');
  const systemUsec = k.get('system_usec');
  if (usageUsec === undefined || userUsec === undefined || systemUsec === undefined) return missing('cpu.stat lacks usage_usec, user_usec or system_usec');
  const out: CpuUsage = { available: true, usageUsec, userUsec, systemUsec };
  // Present only where the cpu controller is enabled for the cgroup.
  const nrPeriods = k.get('nr_periods');
  const nrThrottled = k.get('nr_throttled');
  const throttledUsec = k.get('throttled_usec');
  if (nrPeriods !== undefined) out.nrPeriods = nrPeriods;
  if (nrThrottled !== undefined) out.nrThrottled = nrThrottled;
  if (throttledUsec !== undefined) out.throttledUsec = throttledUsec;
  return out;
}

async function readMemory(dir: string): Promise<MemoryUsage | UsageMissing> {
  const [current, peak, st] = await Promise.all([file(dir, 'memory.current'), file(dir, 'memory.peak'), file(dir, 'memory.stat')]);
  const c = singleCounter(current, 'memory.current');
  if (!c.ok) return missing(c.reason);
  const out: MemoryUsage = { available: true, currentBytes: c.value };
  const p = singleCounter(peak, 'memory.peak');
  if (p.ok) out.peakBytes = p.value;
  if (st.ok) {
    const k = flatKeyed(st.value);
    const anon = k.get('anon');
    const fileBytes = k.get('file');
    if (anon !== undefined) out.anonBytes = anon;
    if (fileBytes !== undefined) out.fileBytes = fileBytes;
  }
  return out;
}

async function readIo(dir: string): Promise<IoUsage | UsageMissing> {
  const r = await file(dir, 'io.stat');
  if (!r.ok) return missing(r.reason);
  const out: IoUsage = { available: true, readBytes: 0, writeBytes: 0, devices: [] };
  for (const { key, values } of nestedKeyed(r.value)) {
    if (!/^[0-9]+:[0-9]+$/.test(key)) continue;
    const d = {
      device: key,
      readBytes: values.get('rbytes') ?? 0,
      writeBytes: values.get('wbytes') ?? 0,
      readIos: values.get('rios') ?? 0,
      writeIos: values.get('wios') ?? 0,
      ...(values.has('dbytes') ? { discardBytes: values.get('dbytes')! } : {}),
      ...(values.has('dios') ? { discardIos: values.get('dios')! } : {}),
    };
    out.devices.push(d);
    out.readBytes += d.readBytes;
    out.writeBytes += d.writeBytes;
  }
  return out;
}

async function readPids(dir: string): Promise<PidsUsage | UsageMissing> {
  const c = singleCounter(await file(dir, 'pids.current'), 'pids.current');
  return c.ok ? { available: true, current: c.value } : missing(c.reason);
}
