/**
 * The multi-call tools bundle (eve-tools.cjs) on Debian 12's own Node.js 18, unpacked from its
 * .deb (test/helpers/debian-node18.ts): the proposal's genaik → pubgetaik → sign against the
 * real service (Node 20, swtpm) over a unix socket, then `openssl dgst -verify` says Verified OK.
 * The tools are run by their installed names (symlinks to the bundle), as install.sh lays them out.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { debianNode18, type DebianNode } from '../helpers/debian-node18.js';
import { bundleExecutables } from '../guest/harness.js';
import { missingPrerequisites, startStack, type Stack } from './stack.js';
import { TOOL_NAMES } from '../../src/service/protocol/tools.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = [...missingPrerequisites(), ...['apt-get', 'dpkg', 'unshare'].filter((c) => !has(c))];

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(skipUnlessCI(missing.length > 0, missing.join(', ')))("the tools bundle on Debian 12's Node.js 18", () => {
  let node18: DebianNode;
  let stack: Stack;
  let bin: string;
  let work: string;

  beforeAll(async () => {
    node18 = debianNode18();
    stack = await startStack([{ id: 'app' }]);
    bin = join(stack.dir, 'multi');
    mkdirSync(bin);
    await bundleExecutables(bin, ['eve-tools']);
    for (const t of ['genaik', 'pubgetaik', 'sign']) symlinkSync(join(bin, 'eve-tools.cjs'), join(bin, `eve_tools_tpm2_${t}`));
    work = join(stack.dir, 'work18');
    mkdirSync(work);
    writeFileSync(join(work, 'message.txt'), 'Hello from a stock Debian 12 guest.\n');
  }, 300_000);
  afterAll(async () => {
    await stack?.stop();
  });

  /** `node18 TOOL ARGS` in `work`, as tenant app over the unix socket. */
  const run = (tool: string, args: string[]): Promise<Ran> =>
    new Promise((resolve, reject) => {
      const [cmd, argv] = node18.command([join(bin, tool), ...args]);
      const child = spawn(cmd, argv, { cwd: work, env: { ...stack.env('app'), LD_LIBRARY_PATH: node18.env.LD_LIBRARY_PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });

  it('is Node 18', () => {
    expect(node18.version).toMatch(/^v18\./);
  });

  it('genaik, pubgetaik, sign by their names; openssl verifies the signature', async () => {
    const g = await run('eve_tools_tpm2_genaik', ['-g', '0x1']);
    expect(g, g.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(g.stdout).toMatch(/0x81010000/);
    const p = await run('eve_tools_tpm2_pubgetaik', ['-k', '0x81010000', '-f', 'ak.pem']);
    expect(p).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const s = await run('eve_tools_tpm2_sign', ['-k', '0x81010000', '-m', 'message.txt', '-g', '0x00B', '-s', 'sign.bin']);
    expect(s).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const v = spawnSync('openssl', ['dgst', '-sha256', '-verify', 'ak.pem', '-signature', 'sign.bin', 'message.txt'], { cwd: work, encoding: 'utf8' });
    expect(v.stdout).toBe('Verified OK\n');
  });

  it('dispatches on its first argument when called by its own name; an unknown tool is a usage error', async () => {
    const l = await run('eve-tools.cjs', ['listkeys', '--json']);
    expect(l, l.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(l.stdout).keys).toHaveLength(1);
    const u = await run('eve-tools.cjs', ['frob']);
    expect(u.code).toBe(2);
    expect(u.stderr).toBe(`eve-tools: unknown tool 'frob' (one of: ${TOOL_NAMES.join(', ')}); try 'eve-tools TOOL --help'\n`);
    // A tool whose command is not TPM-prefixed, by its short name and by its command.
    for (const name of ['usage', 'eve_tools_usage']) {
      const h = await run('eve-tools.cjs', [name, '--help']);
      expect(h.code, name).toBe(0);
      expect(h.stdout).toMatch(/^Usage: eve_tools_usage \[options\]/);
    }
    const h = await run('eve-tools.cjs', ['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^usage: eve-tools TOOL/);
  });

  it('is small enough to embed in user-data', () => {
    const raw = readFileSync(join(bin, 'eve-tools.cjs'));
    const gz = gzipSync(raw, { level: 9 }).length;
    console.log(`eve-tools.cjs: ${raw.length} bytes, ${gz} gzipped`);
    // Generous bounds: this catches a second copy of a dependency, not ordinary growth.
    expect(raw.length).toBeLessThan(400_000);
    expect(gz).toBeLessThan(100_000);
  });
});
