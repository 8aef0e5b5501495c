/**
 * The cloud-init user-data that provisions an application VM for the service, printed or
 * written once by `tenant add` (the only time the secret exists in the clear).
 *
 * Embedded (the default): the tools bundle (dist/bin/eve-tools.cjs) and every vsock addon
 * prebuilt for Linux (prebuilds/linux-ARCH-LIBC/vsock.node) go in as write_files with
 * `encoding: gz+b64`, beside the config and a setup script (guest-setup.ts) that runcmd runs:
 * no URL, no package download — the VM needs only Node.js ≥ 18 in its image.
 * Downloaded (`toolsUrl` + `toolsSha256`): the VM fetches the tarball of
 * `deploy/install.sh --bundle` and checks it, as deploy/cloud-init.yaml does.
 * `--raw-tpm device` adds the device daemon (eve-tpm-vtpmd.cjs, its own bundle: only these VMs
 * pay its size) and the script that runs it (src/guest/vtpmd-setup.ts); downloaded, install.sh
 * `--raw-tpm device` does the same from the tarball.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { vtpmdSetupScript } from '../../guest/vtpmd-setup.js';
import { GUEST_CONFIG, GUEST_ENVIRONMENT, GUEST_LIB, GUEST_TCTI_PROFILE, GUEST_VTPMD, GUEST_VTPMD_SETUP, guestSetupScript, rawTpmEnv, type RawTpm } from './guest-setup.js';

/** The platforms an addon may be prebuilt for, as prebuilds/ names them. */
export const ADDON_PLATFORMS = ['linux-x64-glibc', 'linux-x64-musl', 'linux-arm64-glibc', 'linux-arm64-musl'] as const;

export interface EmbeddedTools {
  /** eve-tools.cjs, the multi-call bundle. */
  bundle: Uint8Array;
  /** The addon per platform, for those that have one. */
  addons: { platform: string; file: Uint8Array }[];
  /** eve-tpm-vtpmd.cjs, the device daemon: only for `--raw-tpm device`. */
  vtpmd?: Uint8Array;
}

export type ToolsSource = { embed: EmbeddedTools } | { url: string; sha256: string };

export interface CloudInitOptions {
  tenantId: string;
  secret: string;
  /** Address as seen from the VM (default vsock:2:8877: the host, CID 2). */
  service: string;
  tools: ToolsSource;
  /**
   * `tcti`: stock TPM software defaults to the cmd TCTI through eve_tools_tpm2_tcti; `device`:
   * eve-tpm-vtpmd makes /dev/tpmrmN (embedded: `tools.embed.vtpmd` is required). Default none.
   */
  rawTpm?: RawTpm;
}

export class ToolsPayloadError extends Error {
  override readonly name = 'ToolsPayloadError';
}

/**
 * Reads the bundle and whatever addons `prebuildsDir` holds (none is fine: the VM then uses socat);
 * with `vtpmd`, also eve-tpm-vtpmd.cjs beside the bundle (as the build puts it).
 */
export function loadEmbeddedTools(bundlePath: string, prebuildsDir: string, opts: { vtpmd?: boolean } = {}): EmbeddedTools {
  let bundle: Uint8Array;
  try {
    bundle = readFileSync(bundlePath);
  } catch (e) {
    throw new ToolsPayloadError(`cannot read the tools bundle ${bundlePath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): run 'npm run build', or pass --tools-bundle FILE`);
  }
  const addons = ADDON_PLATFORMS.map((platform) => ({ platform, path: join(prebuildsDir, platform, 'vsock.node') }))
    .filter((a) => existsSync(a.path))
    .map((a) => ({ platform: a.platform, file: readFileSync(a.path) }));
  if (!opts.vtpmd) return { bundle, addons };
  const daemon = join(dirname(bundlePath), 'eve-tpm-vtpmd.cjs');
  try {
    return { bundle, addons, vtpmd: readFileSync(daemon) };
  } catch (e) {
    throw new ToolsPayloadError(`--raw-tpm device embeds the device daemon, but ${daemon} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): run 'npm run build' (it is built beside eve-tools.cjs)`);
  }
}

const gzB64 = (data: Uint8Array): string => gzipSync(data, { level: 9 }).toString('base64');

/** One write_files entry; `content` is a single line (base64) or a block. */
function writeFile(path: string, mode: string, content: string, opts: { gz?: boolean; owner?: string; append?: boolean } = {}): string[] {
  const lines = [`  - path: ${path}`];
  if (opts.owner) lines.push(`    owner: ${opts.owner}`);
  if (opts.append) lines.push('    append: true');
  lines.push(`    permissions: '${mode}'`);
  if (opts.gz) return [...lines, '    encoding: gz+b64', `    content: ${content}`];
  return [...lines, '    content: |', ...content.replace(/\n$/, '').split('\n').map((l) => (l ? `      ${l}` : ''))];
}

export function cloudInitUserData(o: CloudInitOptions): string {
  const config = JSON.stringify({ service: o.service, secret: o.secret });
  const head = [
    '#cloud-config',
    `# eve-tpm-service tenant "${o.tenantId}": TPM tools and their configuration.`,
    '# Contains the tenant secret: treat this user-data as a secret.',
  ];
  // The config is written in both modes; owner-only, as it holds the secret.
  const configFile = [...writeFile(GUEST_CONFIG, '0600', config, { owner: 'root:root' }), ...(o.rawTpm === 'tcti' ? tctiDefaults() : [])];
  if ('url' in o.tools) {
    return [
      ...head,
      '# The tarball comes from `deploy/install.sh --bundle eve-tools.tar.gz` in a built checkout.',
      'packages:',
      '  - nodejs',
      '  - curl',
      '  - ca-certificates',
      'write_files:',
      ...configFile,
      'runcmd:',
      '  - - sh',
      '    - -ec',
      '    - |',
      `      url=${shellWord(o.tools.url)}`,
      `      sha=${o.tools.sha256}`,
      '      work=$(mktemp -d)',
      '      curl -fsSL --retry 5 -o "$work/eve-tools.tar.gz" "$url"',
      '      echo "$sha  $work/eve-tools.tar.gz" | sha256sum -c -',
      '      tar -xzf "$work/eve-tools.tar.gz" -C "$work"',
      `      sh "$work/eve-tools/install.sh" --prefix /usr/local${o.rawTpm === 'device' ? ' --raw-tpm device' : ''}`,
      '      rm -rf "$work"',
      '',
    ].join('\n');
  }
  const { bundle, addons, vtpmd } = o.tools.embed;
  if (o.rawTpm === 'device' && !vtpmd) throw new ToolsPayloadError('--raw-tpm device needs the device daemon (eve-tpm-vtpmd.cjs) in the embedded tools');
  const device = o.rawTpm === 'device' && vtpmd ? [...writeFile(GUEST_VTPMD, '0755', gzB64(vtpmd), { gz: true }), ...writeFile(GUEST_VTPMD_SETUP, '0755', vtpmdSetupScript(GUEST_VTPMD))] : [];
  return [
    ...head,
    `# Installs with no network: the tools and vsock addons (${addons.map((a) => a.platform).join(', ') || 'none'}) are`,
    `# embedded; the image needs Node.js >= 18. ${GUEST_LIB}/setup.sh picks the addon for the VM.`,
    'write_files:',
    ...writeFile(`${GUEST_LIB}/eve-tools.cjs`, '0755', gzB64(bundle), { gz: true }),
    ...addons.flatMap((a) => writeFile(`${GUEST_LIB}/prebuilds/${a.platform}/vsock.node`, '0755', gzB64(a.file), { gz: true })),
    ...device,
    ...writeFile(`${GUEST_LIB}/setup.sh`, '0755', guestSetupScript(o.rawTpm)),
    ...configFile,
    'runcmd:',
    `  - [sh, ${GUEST_LIB}/setup.sh]`,
    '',
  ].join('\n');
}

/**
 * `--raw-tpm tcti`: the TCTI defaults for login shells (profile.d) and for services and
 * non-login sessions (/etc/environment, appended: it may hold the image's own lines).
 */
function tctiDefaults(): string[] {
  const vars = Object.entries(rawTpmEnv());
  const why = '# Written by eve-tpm-service tenant add --raw-tpm tcti: stock TPM software uses the TPM service.';
  return [
    ...writeFile(GUEST_TCTI_PROFILE, '0644', [why, ...vars.map(([k, v]) => `export ${k}="${v}"`)].join('\n')),
    ...writeFile(GUEST_ENVIRONMENT, '0644', vars.map(([k, v]) => `${k}="${v}"`).join('\n'), { append: true }),
  ];
}

/** Single-quotes a value for sh (URLs may carry `&`, `?`). */
function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
