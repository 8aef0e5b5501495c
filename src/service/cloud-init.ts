/**
 * The cloud-init user-data that provisions an application VM for the service: it installs the
 * eve_tools_tpm2_* tools and writes their configuration (service address and the tenant's
 * secret) owner-only. Printed once by `tenant add`, the only time the secret is shown.
 */

export interface CloudInitOptions {
  tenantId: string;
  secret: string;
  /** Address as seen from the VM (default vsock:2:8877: the host, CID 2). */
  service: string;
}

export function cloudInitSnippet(o: CloudInitOptions): string {
  const config = JSON.stringify({ service: o.service, secret: o.secret });
  return [
    '#cloud-config',
    `# eve-tpm-service tenant "${o.tenantId}": TPM tools and their configuration.`,
    '# Contains the tenant secret: treat this user-data as a secret.',
    'packages:',
    '  - nodejs',
    '  - npm',
    'write_files:',
    '  - path: /etc/eve-tools/config.json',
    '    owner: root:root',
    "    permissions: '0600'",
    '    content: |',
    `      ${config}`,
    'runcmd:',
    '  - [ npm, install, --global, --omit=optional, eve-tpm-tools ]',
    '',
  ].join('\n');
}
