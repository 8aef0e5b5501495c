/**
 * The one-command demo (`npm run demo`): runs to success and leaves nothing behind; on a
 * failure midway and on Ctrl-C it says so, exits non-zero and still cleans up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isCI } from '../helpers/ci.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { cleanEnv, missingPrerequisites } from './stack.js';

const missing = missingPrerequisites();
if (missing.length && isCI()) throw new Error(`the demo needs ${missing.join(', ')}`);
const d = missing.length ? describe.skip : describe;

let scratch: string | undefined;
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface DemoRun {
  code: number | null;
  out: string;
}

/** Runs the demo; `interruptWhen` sends SIGINT once the output matches it. */
function runDemo(env: NodeJS.ProcessEnv, interruptWhen?: RegExp): Promise<DemoRun> {
  return new Promise((resolve) => {
    // In its own process group, so Ctrl-C can be sent as a terminal sends it: to the whole
    // foreground group (npm, the demo, and everything the demo started).
    // Through npm for the real entry point; Ctrl-C tests run the script directly, since npm
    // itself dies of SIGINT (as in a terminal) and so cannot report the demo's exit code.
    const [cmd, args] = interruptWhen ? [process.execPath, ['scripts/demo.mjs']] : ['npm', ['run', '--silent', 'demo']];
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let sent = false;
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (interruptWhen && !sent && interruptWhen.test(out)) {
        sent = true;
        process.kill(-child.pid!, 'SIGINT');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The demo's temp dir, from its "fresh state (DIR)" line. */
const demoDir = (out: string): string => /fresh state \((\/[^)]+)\)/.exec(out)?.[1] ?? '';

/** Nothing the demo started is still running: no process mentions its directory. */
function leftovers(dir: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout;
  return ps.split('\n').filter((l) => dir && l.includes(dir));
}

d('npm run demo', () => {
  it('runs the proposal commands, verifies with openssl, exits 0 and cleans up', async () => {
    const r = await runDemo(cleanEnv());
    expect(r.code, r.out).toBe(0);
    // The three commands exactly as in the proposal, and their output.
    expect(r.out).toContain('$ eve_tools_tpm2_genaik -g 0x1\nAIK Pair generated at persistent handle 0x81010000\n');
    expect(r.out).toContain('$ eve_tools_tpm2_pubgetaik -k 0x81010000 -f ak.pem\n');
    expect(r.out).toContain('$ eve_tools_tpm2_sign -k 0x81010000 -m message.txt -g 0x00B -s sign.bin\n');
    expect(r.out).toContain('$ openssl dgst -sha256 -verify ak.pem -signature sign.bin message.txt\nVerified OK\n');
    expect(r.out.match(/Verified OK/g)).toHaveLength(2); // RSA and ECC
    expect(r.out).toContain('$ eve_tools_tpm2_genaik -g 0x23\n');
    expect(r.out).toMatch(/refused \(exit 3\)/);
    expect(r.out).toMatch(/demo complete/);
    const dir = demoDir(r.out);
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  }, 180_000);

  it('a failing step: clear message, exit 1, everything stopped and removed', async () => {
    // An openssl that fails: the demo gets as far as the first verification, then must unwind.
    scratch = mkdtempSync(join(tmpdir(), 'cli-demo-'));
    const fake = join(scratch, 'bin');
    mkdirSync(fake);
    writeFileSync(join(fake, 'openssl'), '#!/bin/sh\necho "openssl: simulated failure" >&2\nexit 1\n', { mode: 0o755 });
    const r = await runDemo(cleanEnv({ PATH: `${fake}:${process.env.PATH}` }));
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/openssl: simulated failure/);
    expect(r.out).toMatch(/✗ demo failed: step failed: openssl dgst -sha256 -verify ak\.pem/);
    const dir = demoDir(r.out);
    expect(existsSync(dir)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  }, 180_000);

  it('Ctrl-C: exit 130, everything stopped and removed', async () => {
    const r = await runDemo(cleanEnv(), /\$ eve_tools_tpm2_genaik -g 0x1/);
    expect(r.code, r.out).toBe(130);
    expect(r.out).toMatch(/interrupted \(SIGINT\); cleaning up/);
    const dir = demoDir(r.out);
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  }, 180_000);
});
