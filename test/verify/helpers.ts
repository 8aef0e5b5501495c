/**
 * The eve-tpm-verify executable for tests: bundled from src/bin/eve-tpm-verify.ts into a private
 * temp directory (dist/ may be rebuilt by someone else meanwhile), run as a real process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runVerify } from '../../src/cli/verify/program.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { run, runOk, type RunResult } from '../helpers/tpm-tools.js';

export interface VerifyBin {
  /** Runs `eve-tpm-verify args…` in `cwd`; resolves whatever the exit code. */
  (cwd: string, ...args: string[]): Promise<RunResult>;
  /** Runs with --json and parses stdout. */
  json(cwd: string, ...args: string[]): Promise<{ code: number | null; report: Report; stderr: string }>;
  remove(): Promise<void>;
}

export interface Report {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
  binding?: { label: string; identity: string; nonce: string; qualifyingData: string };
  [k: string]: unknown;
}

export async function buildVerifyBin(): Promise<VerifyBin> {
  const dir = await mkdtemp(join(tmpdir(), 'verify-bin-'));
  const bin = join(dir, 'eve-tpm-verify.cjs');
  await runOk(
    join(REPO_ROOT, 'node_modules/.bin/esbuild'),
    ['src/bin/eve-tpm-verify.ts', '--bundle', '--platform=node', '--target=node18', '--format=cjs', `--outfile=${bin}`, '--log-level=error'],
    { cwd: REPO_ROOT, timeoutMs: 60_000 },
  );
  const f = ((cwd: string, ...args: string[]) => run(process.execPath, [bin, ...args], { cwd })) as VerifyBin;
  f.json = async (cwd, ...args) => {
    const r = await run(process.execPath, [bin, ...args, '--json'], { cwd });
    let report: Report;
    try {
      report = JSON.parse(r.stdout) as Report;
    } catch {
      throw new Error(`eve-tpm-verify ${args.join(' ')} --json printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
    return { code: r.code, report, stderr: r.stderr };
  };
  f.remove = () => rm(dir, { recursive: true, force: true });
  return f;
}

/** The names of the failed checks of a report. */
export const failed = (r: Report): string[] => r.checks.filter((c) => !c.ok).map((c) => c.name);

/**
 * The same command run in this process (no process start-up: for long tables of cases). Paths
 * are relative to this process's directory, so give absolute ones.
 */
export async function verifyInProcess(...args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        add(chunk.toString());
        cb();
      },
    });
  const code = await runVerify(args, { stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)) });
  return { code, stdout, stderr };
}
