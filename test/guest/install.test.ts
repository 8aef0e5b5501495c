/**
 * The offline install really run inside the qemu-tpm guest: `eve-tpm-service tenant add
 * --user-data` on the host (embedding the tools bundle and the prebuilt vsock addons), the
 * user-data applied in the guest as cloud-init would (the guest has no cloud-init: see
 * apply-user-data.mjs), then the proposal's three commands by their installed names against the
 * real service over vsock. test/guest/install-guest.ts runs in the guest; one boot.
 * The tenant has no CID: every peer on the guest's loopback is CID 1, which no tenant may have.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../helpers/shared.js';
import { bundleExecutables, installAddon } from './harness.js';
import { defineGuestSuite } from './suite.js';

defineGuestSuite({
  title: 'cloud-init user-data from tenant add, installed in a qemu guest with no network, tools over vsock',
  script: 'install-guest',
  checks: ['apply-user-data', 'service-start', 'genaik', 'pubgetaik', 'sign-verified'],
  prepare: async (dir) => {
    const out = await bundleExecutables(dir, ['eve-tpm-service', 'eve-tools']);
    installAddon(dir); // for the service in the guest
    const prebuilds = existsSync(resolve(REPO_ROOT, 'prebuilds')) ? resolve(REPO_ROOT, 'prebuilds') : join(dir, 'prebuilds');
    const userData = join(dir, 'user-data.yaml');
    const add = spawnSync(
      process.execPath,
      [out['eve-tpm-service']!, 'tenant', 'add', '--id', 'vm', '--tenants', join(dir, 'tenants.json'), '--service-address', 'vsock:1:8877', '--user-data', userData, '--prebuilds', prebuilds],
      { encoding: 'utf8' },
    );
    if (add.status !== 0) throw new Error(`tenant add: ${add.stderr}`);
    // PyYAML's safe_load, as cloud-init reads it; the guest has no Python.
    const json = spawnSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', userData], { encoding: 'utf8' });
    if (json.status !== 0) throw new Error(`user-data is not YAML: ${json.stderr}`);
    writeFileSync(join(dir, 'user-data.json'), json.stdout);
    copyFileSync(join(REPO_ROOT, 'test/guest/apply-user-data.mjs'), join(dir, 'apply-user-data.mjs'));
  },
});
