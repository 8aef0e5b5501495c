/**
 * Host side: the guest kernel's tpm_vtpm_proxy.ko, which the qemu-tpm initramfs leaves out. It
 * comes from the very kernel package the harness cache booted (its `stamp` names the .deb), taken
 * from the cache's debs/ when there, else `apt-get download PKG=VERSION`, and is kept under
 * $EVE_TEST_CACHE (default ~/.cache/eve-tpm-tools) so later runs are offline. Only the one .ko is
 * unpacked (dpkg-deb --fsys-tarfile | tar), nothing is installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { QEMU_TPM_DIR } from './harness.js';

const MODULE = 'tpm_vtpm_proxy.ko';

const run = (cmd: string, args: string[], cwd?: string): string => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
  return r.stdout;
};

function qemuCache(): string {
  return process.env.QEMU_TPM_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'qemu-tpm-guest');
}

/** The kernel .deb the harness booted: `kernel=<file>` on the first line of its stamp. */
function bootedKernelDeb(): string {
  const cache = qemuCache();
  if (!existsSync(join(cache, 'stamp'))) run(join(QEMU_TPM_DIR, 'build-cache.sh'), []); // a no-op when built
  const m = /^kernel=(\S+\.deb)/m.exec(readFileSync(join(cache, 'stamp'), 'utf8'));
  if (!m) throw new Error(`${join(cache, 'stamp')} names no kernel package`);
  return m[1]!;
}

/** Path of a cached tpm_vtpm_proxy.ko for the guest's kernel (fetched and unpacked once). */
export function vtpmProxyModule(): string {
  const debFile = bootedKernelDeb();
  const [pkg, version] = decodeURIComponent(debFile).split('_') as [string, string];
  const dir = join(process.env.EVE_TEST_CACHE ?? join(homedir(), '.cache/eve-tpm-tools'), `vtpm-proxy-${pkg}-${version.replace(/[^A-Za-z0-9.+-]/g, '_')}`);
  const ko = join(dir, MODULE);
  if (existsSync(ko)) return ko;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, 'dl-'));
  try {
    let deb = join(qemuCache(), 'debs', debFile);
    if (!existsSync(deb)) {
      run('apt-get', ['download', '-q', `${pkg}=${version}`], work);
      const got = readdirSync(work).find((f) => f.endsWith('.deb'));
      if (!got) throw new Error(`apt-get download ${pkg}=${version} gave no .deb`);
      deb = join(work, got);
    }
    const r = spawnSync('sh', ['-c', `dpkg-deb --fsys-tarfile "$0" | tar -x -C "$1" --wildcards '*/drivers/char/tpm/${MODULE}'`, deb, work], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`unpacking ${MODULE} from ${deb}: ${r.stderr.trim()}`);
    const found = run('find', [work, '-name', MODULE]).trim().split('\n')[0];
    if (!found) throw new Error(`${deb} holds no ${MODULE}`);
    // Parallel runs: the first complete file wins, atomically.
    renameSync(found, ko);
    return ko;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Copies tpm2-tools (one multi-call binary, run as `tpm2 TOOL …`) and the libraries it needs,
 * including the device TCTI it dlopens, into `dir`: bin/tpm2 and lib/. False when not installed.
 */
export function installTpm2Tools(dir: string): boolean {
  const tpm2 = spawnSync('sh', ['-c', 'readlink -f "$(command -v tpm2_getrandom)"'], { encoding: 'utf8' }).stdout.trim();
  if (!tpm2 || !existsSync(tpm2)) return false;
  const libs = [...run('ldd', [tpm2]).matchAll(/=> (\/\S+)/g)].map((m) => m[1]!);
  const tcti = run('sh', ['-c', 'ldconfig -p | sed -n "s/.*libtss2-tcti-device.so.0 .*=> //p" | head -n1']).trim();
  if (!tcti) return false;
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'lib'), { recursive: true });
  run('cp', ['-L', ...libs, tcti, join(dir, 'lib')]);
  run('cp', [tpm2, join(dir, 'bin', 'tpm2')]);
  return true;
}
