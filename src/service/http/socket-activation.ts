/**
 * systemd socket activation (sd_listen_fds(3)): the manager passes listening sockets as fds
 * 3, 4, ... and says so in LISTEN_FDS (how many), LISTEN_PID (for which process: variables
 * meant for a parent that exec'd us without clearing them are not ours) and LISTEN_FDNAMES
 * (`:`-separated names, from FileDescriptorName=, for the log). The variables are read once and
 * removed, so a process we start does not believe the sockets are its own.
 */
import { parseAddress, type ListenAddress } from '../protocol/address.js';
import { ListenError } from './listeners.js';

export const SD_LISTEN_FDS_START = 3;

export interface InheritedSocket {
  fd: number;
  /** FileDescriptorName= of the socket unit (systemd's default: the unit's name). */
  name: string | undefined;
}

let taken: InheritedSocket[] | undefined;

/**
 * The sockets systemd passed to this process ([] when none or when they were meant for another
 * pid). Reads and clears the variables on the first call; later calls return the same answer.
 * A malformed LISTEN_FDS addressed to us is an error, not "none".
 */
export function takeSystemdSockets(env: NodeJS.ProcessEnv = process.env, pid = process.pid): InheritedSocket[] {
  if (taken) return taken;
  const { LISTEN_FDS: fds, LISTEN_PID: forPid, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (fds === undefined || forPid === undefined || forPid !== String(pid)) {
    taken = [];
    return taken;
  }
  if (!/^[0-9]{1,4}$/.test(fds)) throw new ListenError(`bad LISTEN_FDS=${JSON.stringify(fds)}: expected a count of sockets`);
  const n = Number(fds);
  const nameList = names === undefined ? [] : names.split(':');
  taken = Array.from({ length: n }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: nameList[i] || undefined }));
  return taken;
}

/** Forgets what was taken (tests that call takeSystemdSockets with their own env). */
export function resetSystemdSocketsForTest(): void {
  taken = undefined;
}

export type ListenTarget = { address: Exclude<ListenAddress, { kind: 'systemd' }>; name?: string };

/**
 * The `listen` entries as things to open: `systemd` becomes one `fd:N` per socket systemd
 * passed (an error when it passed none: a unit started without its .socket). Sockets passed
 * but named by no entry are an error too: the unit's ExecStart lacks `--listen systemd`, and
 * the default address would collide with the socket systemd holds.
 */
export function listenTargets(specs: readonly string[], env: NodeJS.ProcessEnv = process.env, pid = process.pid): ListenTarget[] {
  const inherited = takeSystemdSockets(env, pid);
  const out: ListenTarget[] = [];
  for (const spec of specs) {
    const a = parseAddress(spec, 'listen');
    if (a.kind !== 'systemd') {
      out.push({ address: a });
      continue;
    }
    if (inherited.length === 0) throw new ListenError('--listen systemd: no sockets were passed (LISTEN_FDS/LISTEN_PID not set for this process; start it through its .socket unit)');
    for (const s of inherited) out.push({ address: { kind: 'fd', fd: s.fd }, ...(s.name === undefined ? {} : { name: s.name }) });
  }
  const fds = out.flatMap((t) => (t.address.kind === 'fd' ? [t.address.fd] : []));
  const twice = fds.find((fd, i) => fds.indexOf(fd) !== i);
  if (twice !== undefined) throw new ListenError(`fd:${twice} is named twice in --listen (systemd includes every passed socket)`);
  const unused = inherited.filter((s) => !out.some((t) => t.address.kind === 'fd' && t.address.fd === s.fd));
  if (unused.length > 0) {
    throw new ListenError(`systemd passed ${unused.length === 1 ? 'a socket' : `${unused.length} sockets`} (fd ${unused.map((s) => s.fd).join(', ')}) that no --listen names: add --listen systemd`);
  }
  return out;
}
