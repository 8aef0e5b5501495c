/**
 * Who is on the other end of an accepted vsock connection.
 *
 * The addon's accept thread hands over only a descriptor, and Node has no getpeername() for an
 * arbitrary fd (its TCP binding formats only IPv4/IPv6 addresses; its Pipe binding has none).
 * There is no /proc/net/vsock either. The kernel does publish every vsock socket through
 * sock_diag netlink (module vsock_diag), which Node cannot speak, but iproute2's `ss` can:
 *
 *   ss --vsock -a -H -n -p
 *   v_str ESTAB 0 0 1:5000 1:1483022416 users:(("node",pid=122,fd=20))
 *
 * `-p` maps each socket's inode to the processes and fds holding it, so the line whose users
 * include (our pid, this fd) gives the peer as CID:port. We hold the fd open while asking, so
 * it cannot name another socket. One `ss` run answers every lookup queued while it runs.
 *
 * Requirements and limits: the `ss` binary (iproute2 ≥ 4.15; `$EVE_TOOLS_SS` or PATH) and the
 * vsock_diag kernel module (CONFIG_VSOCKETS_DIAG); `listenVsock` checks both at start-up and
 * fails if they are missing. One fork+exec per burst of connections (a few ms on hardware,
 * ~0.2 s under TCG emulation). Children inherit the addon's descriptors (it does not set
 * SOCK_CLOEXEC): `ss` holds them for its short life. A line that cannot be attributed
 * unambiguously (none, or several for the same pid/fd) is an error: the caller then refuses
 * the connection, never treating it as anonymous.
 */
import { execFile } from 'node:child_process';
import type { VsockPeer } from './stream.js';

export const SS_ENV = 'EVE_TOOLS_SS';
const VMADDR_CID_ANY = 0xffffffff;
const U32_MAX = 0xffffffff;

/** One vsock socket as `ss` lists it. */
export interface SsVsockEntry {
  state: string;
  /** Local CID (undefined for `*`, VMADDR_CID_ANY) and port. */
  local: { cid: number | undefined; port: number | undefined };
  peer: { cid: number | undefined; port: number | undefined };
  /** (pid, fd) pairs holding the socket. */
  users: { pid: number; fd: number }[];
}

/** Parses `ss --vsock -a -H -n -p` output. Lines that do not look like a socket are skipped. */
export function parseSsVsock(output: string): SsVsockEntry[] {
  const out: SsVsockEntry[] = [];
  for (const line of output.split('\n')) {
    const usersAt = line.indexOf('users:(');
    const head = (usersAt >= 0 ? line.slice(0, usersAt) : line).trim().split(/\s+/);
    const addrs = head.map(parseAddr).filter((a): a is NonNullable<ReturnType<typeof parseAddr>> => a !== undefined);
    if (addrs.length !== 2) continue;
    const users: { pid: number; fd: number }[] = [];
    if (usersAt >= 0) {
      for (const m of line.slice(usersAt).matchAll(/,pid=(\d+),fd=(\d+)\)/g)) users.push({ pid: Number(m[1]), fd: Number(m[2]) });
    }
    // head: [Netid] State Recv-Q Send-Q Local Peer
    const state = head.find((t) => /^[A-Z][A-Z0-9-]+$/.test(t)) ?? '';
    out.push({ state, local: addrs[0]!, peer: addrs[1]!, users });
  }
  return out;
}

function parseAddr(token: string): { cid: number | undefined; port: number | undefined } | undefined {
  const m = /^(\*|\d{1,10}):(\*|\d{1,10})$/.exec(token);
  if (!m) return undefined;
  const num = (s: string): number | undefined => (s === '*' ? undefined : Number(s));
  const cid = num(m[1]!);
  const port = num(m[2]!);
  if ((cid !== undefined && cid > U32_MAX) || (port !== undefined && port > U32_MAX)) return undefined;
  return { cid, port };
}

/**
 * The peer of the socket at (`pid`, `fd`). Exactly one entry must be held by that pid/fd, it
 * must be bound to `localPort` when given, and its peer must be a definite CID:port.
 */
export function peerFromEntries(entries: SsVsockEntry[], pid: number, fd: number, localPort?: number): VsockPeer {
  const mine = entries.filter((e) => e.users.some((u) => u.pid === pid && u.fd === fd));
  if (mine.length === 0) throw new Error(`ss does not list descriptor ${fd} of process ${pid} as a vsock socket`);
  if (mine.length > 1) throw new Error(`ss lists descriptor ${fd} of process ${pid} more than once`);
  const e = mine[0]!;
  if (localPort !== undefined && e.local.port !== localPort) {
    throw new Error(`descriptor ${fd} is bound to vsock port ${String(e.local.port)}, not ${localPort}`);
  }
  const { cid, port } = e.peer;
  if (cid === undefined || port === undefined || cid === VMADDR_CID_ANY) {
    throw new Error(`descriptor ${fd} has no definite vsock peer (state ${e.state || '?'})`);
  }
  return { cid, port };
}

export interface SsRunnerOptions {
  /** `ss` binary (default `$EVE_TOOLS_SS`, else `ss` on PATH). */
  ssPath?: string;
  /** Kill `ss` after this long (default 15 s: it is slow on a loaded or emulated machine). */
  timeoutMs?: number;
}

/** Runs `ss` once and parses it. */
export function runSs(opts: SsRunnerOptions = {}): Promise<SsVsockEntry[]> {
  const bin = opts.ssPath ?? process.env[SS_ENV] ?? 'ss';
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      ['--vsock', '-a', '-H', '-n', '-p'],
      { timeout: opts.timeoutMs ?? 15_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' }, windowsHide: true },
      (err, stdout, stderr) => {
        if (err) {
          const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${bin} not found (iproute2's ss is needed to learn vsock peer CIDs)` : `${bin} failed: ${err.message.trim()} ${String(stderr).trim()}`;
          reject(new Error(why, { cause: err }));
          return;
        }
        resolve(parseSsVsock(String(stdout)));
      },
    );
  });
}

/** Coalesces concurrent lookups into one `ss` run per burst. */
export class SsPeerResolver {
  private waiting: { fd: number; localPort: number | undefined; resolve: (p: VsockPeer) => void; reject: (e: Error) => void }[] = [];
  private running = false;

  constructor(private readonly opts: SsRunnerOptions = {}) {}

  /** The peer of our descriptor `fd` (which must stay open until this settles). */
  lookup(fd: number, localPort?: number): Promise<VsockPeer> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ fd, localPort, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      let entries: SsVsockEntry[] | undefined;
      let failure: Error | undefined;
      try {
        entries = await runSs(this.opts);
      } catch (e) {
        failure = e as Error;
      }
      for (const w of batch) {
        if (!entries) {
          w.reject(failure!);
          continue;
        }
        try {
          w.resolve(peerFromEntries(entries, process.pid, w.fd, w.localPort));
        } catch (e) {
          w.reject(e as Error);
        }
      }
    }
    this.running = false;
  }
}
