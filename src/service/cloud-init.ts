/**
 * The cloud-init user-data that provisions an application VM for the service: it installs the
 * eve_tools_tpm2_* tools (the tarball made by `deploy/install.sh --bundle`, checked by sha256,
 * installed by its own install.sh — the same flow as deploy/cloud-init.yaml) and writes their
 * configuration (service address and the tenant's secret) owner-only. Printed once by
 * `tenant add`, the only time the secret is shown.
 */

export interface CloudInitOptions {
  tenantId: string;
  secret: string;
  /** Address as seen from the VM (default vsock:2:8877: the host, CID 2). */
  service: string;
  /** Where the VM downloads the tools tarball; a CHANGE-ME placeholder when not given. */
  toolsUrl?: string;
  /** sha256 of that tarball. */
  toolsSha256?: string;
}

export function cloudInitSnippet(o: CloudInitOptions): string {
  const config = JSON.stringify({ service: o.service, secret: o.secret });
  const url = o.toolsUrl ?? 'CHANGE-ME-https://example.invalid/eve-tools.tar.gz';
  const sha = o.toolsSha256 ?? 'CHANGE-ME-sha256-of-the-tarball';
  return [
    '#cloud-config',
    `# eve-tpm-service tenant "${o.tenantId}": TPM tools and their configuration.`,
    '# Contains the tenant secret: treat this user-data as a secret.',
    '# The tarball comes from `deploy/install.sh --bundle eve-tools.tar.gz` in a built checkout.',
    'packages:',
    '  - nodejs',
    '  - curl',
    '  - ca-certificates',
    'write_files:',
    '  - path: /etc/eve-tools/config.json',
    '    owner: root:root',
    "    permissions: '0600'",
    '    content: |',
    `      ${config}`,
    'runcmd:',
    '  - - sh',
    '    - -ec',
    '    - |',
    `      url=${shellWord(url)}`,
    `      sha=${shellWord(sha)}`,
    '      work=$(mktemp -d)',
    '      curl -fsSL --retry 5 -o "$work/eve-tools.tar.gz" "$url"',
    '      echo "$sha  $work/eve-tools.tar.gz" | sha256sum -c -',
    '      tar -xzf "$work/eve-tools.tar.gz" -C "$work"',
    '      sh "$work/eve-tools/install.sh" --prefix /usr/local',
    '      rm -rf "$work"',
    '',
  ].join('\n');
}

/** Single-quotes a value for sh (URLs may carry `&`, `?`). */
function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
