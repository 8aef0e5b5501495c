/**
 * eve_tools_tpm2_capabilities end to end: the bundled tool as a child process → the service
 * (child process, two tenants with different quotas) → swtpm. Each tenant sees its own quota
 * and keys, as a table and as --json; failures exit as every tool does. Also the multi-call
 * eve-tools.cjs, built here, running it by name.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.js';
import { isCI } from '../helpers/ci.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { cleanEnv, missingPrerequisites, runNode, startStack, type Stack } from './stack.js';

const missing = missingPrerequisites();
if (missing.length && isCI()) throw new Error(`end-to-end tests need ${missing.join(', ')} (apt-get install swtpm swtpm-tools openssl)`);
const d = missing.length ? describe.skip : describe;

const TOOL = 'eve_tools_tpm2_capabilities';

/** Exactly one line on stderr, starting with the tool's name; returns the rest of it. */
function oneLine(stderr: string, tool: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`${tool}: `), stderr).toBe(true);
  return lines[0]!.slice(tool.length + 2);
}

d('eve_tools_tpm2_capabilities', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack([{ id: 'app', maxKeys: 3 }, { id: 'other', maxKeys: 5 }]);
    const g = await stack.run('eve_tools_tpm2_genaik', ['-g', 'ecc'], 'app');
    expect(g, g.stderr).toMatchObject({ code: 0 });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('prints a table of what this tenant may do, with its own quota', async () => {
    const a = await stack.run(TOOL, [], 'app');
    expect(a, a.stderr).toMatchObject({ code: 0, stderr: '' });
    const [facts, ops] = a.stdout.trimEnd().split('\n\n');
    expect(facts!.split('\n')).toEqual([
      'tenant          app',
      'keys            1 of 3 used, 2 left',
      'key types       rsa, ecc',
      'hashes          sha1, sha256, sha384, sha512',
      'sign formats    plain, der, tss',
      'public formats  pem, der, tss',
    ]);
    const rows = ops!.split('\n');
    expect(rows[0]).toMatch(/^OPERATION\s+METHOD\s+PATH$/);
    expect(rows.slice(1).map((r) => r.split(/\s+/))).toContainEqual(['capabilities', 'GET', '/v1/capabilities']);
    expect(rows.slice(1).map((r) => r.split(/\s+/))).toContainEqual(['sign', 'POST', '/v1/keys/{handle}/sign']);

    const o = await stack.run(TOOL, [], 'other');
    expect(o.stdout.split('\n').slice(0, 2)).toEqual(['tenant          other', 'keys            0 of 5 used, 5 left']);
  });

  it('--json: the same figures as an object; they follow the tenant\'s keys', async () => {
    const j = JSON.parse((await stack.run(TOOL, ['--json'], 'other')).stdout);
    // swtpm implements all four hashes: the service asked the TPM (hashAlgsFrom "tpm").
    expect(j).toMatchObject({ tenant: 'other', keyTypes: ['rsa', 'ecc'], hashAlgs: ['sha1', 'sha256', 'sha384', 'sha512'], hashAlgsFrom: 'tpm', quota: { keys: { max: 5, used: 0, left: 5 } } });
    expect(Object.keys(j).sort()).toEqual(['hashAlgs', 'hashAlgsFrom', 'keyTypes', 'operations', 'publicFormats', 'quota', 'signFormats', 'tenant']);
    expect(j.operations).toContainEqual({ op: 'create-key', method: 'POST', path: '/v1/keys' });
    expect((await stack.run('eve_tools_tpm2_genaik', ['-g', 'rsa'], 'other')).code).toBe(0);
    const after = JSON.parse((await stack.run(TOOL, ['--json'], 'other')).stdout);
    expect(after.quota).toEqual({ keys: { max: 5, used: 1, left: 4 } });
    const app = JSON.parse((await stack.run(TOOL, ['--json'], 'app')).stdout);
    expect(app.quota).toEqual({ keys: { max: 3, used: 1, left: 2 } });
  });

  it('fails as every tool does: a wrong secret is exit 3, an unreachable service exit 4, extra arguments exit 2', async () => {
    const a = await stack.run(TOOL, [], 'app', { env: stack.env('app', { EVE_TOOLS_SECRET: 'wrong' }) });
    expect(a.code).toBe(EXIT.AUTH);
    expect(oneLine(a.stderr, TOOL)).toMatch(/^the TPM service did not accept this application's identity: .*; the secret came from EVE_TOOLS_SECRET$/);
    const b = await stack.run(TOOL, ['--service', `unix:${stack.dir}/nope.sock`]);
    expect(b.code).toBe(EXIT.UNREACHABLE);
    expect(oneLine(b.stderr, TOOL)).toBe(`cannot reach the TPM service at unix:${stack.dir}/nope.sock (from --service): no such socket`);
    const j = await stack.run(TOOL, ['--json'], 'app', { env: stack.env('app', { EVE_TOOLS_SECRET: 'wrong' }) });
    expect(j.code).toBe(EXIT.AUTH);
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'UNAUTHENTICATED' });
    const c = await stack.run(TOOL, ['extra']);
    expect(c.code).toBe(EXIT.USAGE);
    const h = await runNode(stack.tool(TOOL), ['--help'], { env: cleanEnv() });
    expect(h).toMatchObject({ code: 0, stderr: '' });
    expect(h.stdout).toMatch(new RegExp(`^Usage: ${TOOL} \\[options\\]`));
  });

  it('runs from the multi-call eve-tools.cjs by name', async () => {
    const { build } = await import('tsup');
    const configs = (await import('../../tsup.config.js')).default as unknown as Record<string, unknown>[];
    const binConfig = configs.find((c) => typeof c.entry === 'object' && c.entry !== null && Object.keys(c.entry).some((k) => k.startsWith('bin/')))!;
    await build({ ...binConfig, entry: { 'bin/eve-tools': join(REPO_ROOT, 'src/bin/eve-tools.ts') }, outDir: join(stack.dir, 'multi'), clean: false, dts: false, sourcemap: false, silent: true, config: false });
    const multi = join(stack.dir, 'multi/bin/eve-tools.cjs');
    const r = await runNode(multi, ['capabilities', '--json'], { env: stack.env('app') });
    expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toMatchObject({ tenant: 'app', quota: { keys: { max: 3, used: 1, left: 2 } } });
    const u = await runNode(multi, ['frob'], { env: cleanEnv() });
    expect(u.stderr).toContain('capabilities');
  });
});
