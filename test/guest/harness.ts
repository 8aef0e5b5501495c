/**
 * Host side of the guest tests: bundle a guest script into one .cjs, lay out a folder for the
 * qemu guest (script + vsock addon), boot the guest once with shared/tools/qemu-tpm, and read
 * back the `RESULT name PASS|FAIL detail` lines the script prints.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT, SHARED_DIR } from '../helpers/shared.js';

export const QEMU_TPM_DIR = join(SHARED_DIR, 'tools/qemu-tpm');
export const RUN_IN_GUEST = join(QEMU_TPM_DIR, 'run-in-guest.sh');
/** Seconds before run-in-guest.sh kills the guest. */
export const GUEST_TIMEOUT_S = Number(process.env.GUEST_TIMEOUT ?? 240);
/** Vitest timeout for the hook that boots the guest (boot + work + first-time cache build). */
export const GUEST_HOOK_TIMEOUT_MS = (GUEST_TIMEOUT_S + 60) * 1000;

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * Why the guest cannot run here, or undefined when it can. Under CI the caller fails instead
 * of skipping.
 */
export function guestUnavailableReason(): string | undefined {
  const missing = ['qemu-system-x86_64', 'swtpm', 'cpio'].filter((c) => !has(c));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install qemu-system-x86 swtpm swtpm-tools cpio)`;
  if (!existsSync(RUN_IN_GUEST)) return `${RUN_IN_GUEST} not found (shared/ is expected beside the checkout, or EVE_SHARED_DIR)`;
  return undefined;
}

/** A fresh folder for the guest (shared with it over 9p). */
export function guestDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir && !process.env.KEEP_GUEST_DIR) rmSync(dir, { recursive: true, force: true });
}

/** Bundles `entry` (a TypeScript file importing from src/) into `dir/<name>.cjs`, all deps inlined (the vsock addon is a .node file found at run time). */
export async function bundle(entry: string, dir: string, name: string): Promise<string> {
  const { build } = await import('tsup');
  await build({
    entry: { [name]: resolve(REPO_ROOT, entry) },
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    outDir: dir,
    noExternal: [/.*/],
    outExtension: () => ({ js: '.cjs' }),
    config: false,
    dts: false,
    sourcemap: false,
    splitting: false,
    clean: false,
    silent: true,
    tsconfig: resolve(REPO_ROOT, 'tsconfig.json'),
  });
  const out = join(dir, `${name}.cjs`);
  if (!existsSync(out)) throw new Error(`bundling ${entry} produced no ${out}`);
  return out;
}

/**
 * Bundles executables of src/bin (e.g. `eve-tpm-service`, `eve_tools_tpm2_sign`) into
 * `dir/<name>.cjs` with the project's own settings for them (tsup.config.ts's bin entry:
 * platform node, cjs, everything inlined but the vsock addon, shims), in one build.
 */
export async function bundleExecutables(dir: string, names: readonly string[]): Promise<Record<string, string>> {
  const { build } = await import('tsup');
  const configs = (await import('../../tsup.config.js')).default as unknown;
  const list = (Array.isArray(configs) ? configs : [configs]) as Record<string, unknown>[];
  const binConfig = list.find((c) => typeof c.entry === 'object' && c.entry !== null && Object.keys(c.entry).some((k) => k.startsWith('bin/')));
  if (!binConfig) throw new Error('tsup.config.ts has no executables entry');
  await build({
    ...binConfig,
    entry: Object.fromEntries(names.map((n) => [n, resolve(REPO_ROOT, `src/bin/${n}.ts`)])),
    outDir: dir,
    clean: false,
    dts: false,
    sourcemap: false,
    silent: true,
    config: false,
    tsconfig: resolve(REPO_ROOT, 'tsconfig.json'),
  });
  const out: Record<string, string> = {};
  for (const n of names) {
    out[n] = join(dir, `${n}.cjs`);
    if (!existsSync(out[n])) throw new Error(`bundling src/bin/${n}.ts produced no ${out[n]}`);
  }
  return out;
}

/**
 * Puts the vsock addon where a bundled script in `dir` finds it: `dir/prebuilds/linux-x64-glibc/`
 * (the guest runs the host's x64 glibc node). Taken from prebuilds/, else built into a temporary
 * folder by scripts/build-addon.sh.
 */
export function installAddon(dir: string): string {
  const rel = 'prebuilds/linux-x64-glibc/vsock.node';
  let src = resolve(REPO_ROOT, rel);
  if (!existsSync(src)) {
    const out = join(dir, '.addon-build');
    const r = spawnSync(resolve(REPO_ROOT, 'scripts/build-addon.sh'), [out, 'x64-glibc'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`no ${rel} and scripts/build-addon.sh failed: ${r.stderr.trim()}`);
    src = join(out, 'linux-x64-glibc/vsock.node');
  }
  const dest = join(dir, rel);
  mkdirSync(join(dest, '..'), { recursive: true });
  cpSync(src, dest);
  return dest;
}

export interface GuestRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Boots the guest once and runs `command` (sh -c) in `dir`. */
export function runInGuest(dir: string, command: string): Promise<GuestRun> {
  const start = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(RUN_IN_GUEST, [dir, command], {
      env: { ...process.env, GUEST_TIMEOUT: String(GUEST_TIMEOUT_S) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr, ms: Date.now() - start }));
  });
}

export interface GuestResult {
  ok: boolean;
  detail: string;
}

/** `RESULT <name> PASS|FAIL <detail>` lines → name → result. */
export function parseResults(stdout: string): Map<string, GuestResult> {
  const out = new Map<string, GuestResult>();
  for (const line of stdout.split('\n')) {
    const m = /^RESULT (\S+) (PASS|FAIL) ?(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, { ok: m[2] === 'PASS', detail: m[3] ?? '' });
  }
  return out;
}

/** A readable account of a run for failure messages. */
export function describeRun(run: GuestRun | undefined): string {
  if (!run) return 'the guest did not run';
  const tail = (s: string, n: number): string => s.split('\n').slice(-n).join('\n');
  return `guest exit ${String(run.code)} after ${run.ms} ms\n--- stdout (tail)\n${tail(run.stdout, 40)}\n--- stderr (tail)\n${tail(run.stderr, 40)}`;
}
