/**
 * Helpers for the tests that drive the real `eve-tpm-service` admin commands against a real
 * state directory: run the bin without blocking (so several run at once), read the registry
 * and the blob files as they are on disk.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRegistry, type KeyEntry } from '../../src/service/keys/registry.js';

export interface BinResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion without blocking the event loop (bounded: killed after `ms`). */
export function runBinAsync(bin: string, args: string[], ms = 60_000): Promise<BinResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** The secret `tenant add` printed. */
export function secretOf(stdout: string): string {
  const m = /Secret \(shown only now; only its hash is stored\):\n {2}(\S+)/.exec(stdout);
  if (!m) throw new Error(`no secret in: ${stdout}`);
  return m[1]!;
}

export function readRegistry(stateDir: string): KeyEntry[] {
  const path = join(stateDir, 'registry.json');
  return existsSync(path) ? parseRegistry(readFileSync(path, 'utf8')) : [];
}

/** Names of the blob files in the state dir (`0x81010000.json`, …), sorted. */
export function blobFiles(stateDir: string): string[] {
  const dir = join(stateDir, 'keys');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.json')).sort() : [];
}

export const hexHandle = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

/** A pid that certainly belonged to a process that is gone now. */
export function deadPid(): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    c.once('exit', () => resolve(c.pid!));
  });
}
