/**
 * Debian 12's own Node.js 18 (the `nodejs` a stock Debian 12 guest installs), for running the
 * bundled tools on the oldest Node they support. Fetched with `apt-get download` (needs the
 * apt lists: `apt-get update` once, as CI does) and unpacked with `dpkg -x` — not installed —
 * into a cache folder ($EVE_TEST_CACHE, default ~/.cache/eve-tpm-tools), so later runs are
 * offline. The shared libraries Debian's node links against come along (a host that has
 * nodesource's Node 20 may lack libc-ares2 or libuv1) and are found through LD_LIBRARY_PATH.
 * Debian builds node with some builtins (cjs-module-lexer, acorn, undici) loaded from fixed
 * paths under /usr/share/nodejs, so each run gets a private mount namespace (`unshare -m`, as
 * root) in which the unpacked usr/share is overlaid on /usr/share; the host is not touched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** nodejs's own Depends chain, with the libraries libnode108 needs beyond what Node 20 hosts carry. */
const PACKAGES = ['libnode108', 'node-acorn', 'node-cjs-module-lexer', 'node-undici', 'libc-ares2', 'libuv1', 'libicu72', 'libnghttp2-14', 'libbrotli1'];

export interface DebianNode {
  /** The node binary, and the environment it needs (LD_LIBRARY_PATH). */
  node: string;
  env: NodeJS.ProcessEnv;
  version: string;
  /** The command and arguments that run `node ARGS` with Debian's /usr/share/nodejs in place. */
  command(args: string[]): [string, string[]];
  /** The sh command that overlays Debian's usr/share on /usr/share (inside a mount namespace). */
  mountUsrShare: string;
}

const run = (cmd: string, args: string[], cwd?: string): string => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
  return r.stdout;
};

/** The newest 18.x version of `nodejs` apt knows (the host may have a newer nodejs installed). */
function node18Version(): string {
  const madison = run('apt-cache', ['madison', 'nodejs']);
  const v = madison.split('\n').map((l) => l.split('|')[1]?.trim()).find((x) => x?.startsWith('18.'));
  if (!v) throw new Error('apt knows no nodejs 18.x (not Debian 12, or no `apt-get update` yet)');
  return v;
}

export function debianNode18(): DebianNode {
  const version = node18Version();
  const cache = join(process.env.EVE_TEST_CACHE ?? join(homedir(), '.cache/eve-tpm-tools'), `debian-nodejs-${version.replace(/[^A-Za-z0-9.+-]/g, '_')}`);
  const root = join(cache, 'root');
  if (!existsSync(join(root, 'usr/bin/node'))) {
    mkdirSync(cache, { recursive: true });
    const work = mkdtempSync(join(cache, 'dl-'));
    try {
      // nodejs and libnode108 pinned together; the others at apt's candidate.
      run('apt-get', ['download', '-q', `nodejs=${version}`, `${PACKAGES[0]}=${version}`, ...PACKAGES.slice(1)], work);
      const stage = join(work, 'root');
      for (const deb of readdirSync(work).filter((f) => f.endsWith('.deb'))) run('dpkg', ['-x', deb, stage], work);
      // Test files run in parallel: the first complete unpack wins, atomically; a later one
      // is dropped (never remove a root another process may be running from).
      try {
        renameSync(stage, root);
      } catch (e) {
        if (!existsSync(join(root, 'usr/bin/node'))) throw e;
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const node = join(root, 'usr/bin/node');
  const triplet = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const env = { ...process.env, LD_LIBRARY_PATH: join(root, 'usr/lib', triplet) };
  const share = join(root, 'usr/share');
  const mountUsrShare = `mount -t overlay overlay -o "lowerdir=${share}:/usr/share" /usr/share`;
  const command = (args: string[]): [string, string[]] => ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${mountUsrShare} && exec "$0" "$@"`, node, ...args]];
  // A builtin that Debian loads from /usr/share/nodejs: proves the overlay works, not only --version.
  const [cmd, args] = command(['-e', 'require("node:module"); process.stdout.write(process.version)']);
  const got = spawnSync(cmd, args, { env, encoding: 'utf8' });
  if (got.status !== 0) throw new Error(`Debian's node does not run (unshare -m and an overlay mount need root): ${got.stderr.trim().split('\n')[0]}`);
  return { node, env, version: got.stdout.trim(), command, mountUsrShare };
}

/**
 * The first lines of a shell script run as root in fresh mount and pid namespaces that stands
 * for a VM's root: /usr/local, /etc and /run become throw-away overlays in `work` (the host's
 * stay untouched) and Debian's node comes first on PATH; the script then runs in `work`.
 */
export function throwAwayRoot(node18: DebianNode, work: string): string[] {
  return [
    'set -e',
    node18.mountUsrShare,
    `mount -t tmpfs tmpfs ${work}/ovl`,
    ...['usr/local', 'etc', 'run'].flatMap((d) => {
      const o = `${work}/ovl/${d.replace('/', '-')}`;
      return [`mkdir -p ${o}/up ${o}/wk`, `mount -t overlay overlay -o lowerdir=/${d},upperdir=${o}/up,workdir=${o}/wk /${d}`];
    }),
    `export PATH=${dirname(node18.node)}:/usr/local/bin:/usr/bin:/bin`,
    `cd ${work}`,
  ];
}
