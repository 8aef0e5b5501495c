/**
 * Guest-side helpers shared by the scripts that run eve-tpm-service inside the qemu guest:
 * running a bundled executable as a child process, and starting the service with its JSON log
 * (stderr) parsed line by line as it comes.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node FILE ARGS` with `env`; killed after `timeoutMs`. */
export function runNode(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<Run> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
  });
}

export interface ServiceProcess<L> {
  child: ChildProcess;
  /** The JSON log lines so far, parsed. */
  log: L[];
  /** Output that is not a JSON log line (stdout, or stderr that does not parse). */
  noise: string[];
  /** stderr as it came (for saving to the shared folder). */
  raw: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node SERVICE_BIN ARGS`, collecting its JSON log lines. */
export function startServiceProcess<L>(serviceBin: string, args: string[]): ServiceProcess<L> {
  const child = spawn(process.execPath, [serviceBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: ServiceProcess<L> = {
    child,
    log: [],
    noise: [],
    raw: [],
    exit: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => p.noise.push(`stdout: ${s}`));
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    p.raw.push(s);
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        p.log.push(JSON.parse(line) as L);
      } catch {
        p.noise.push(line);
      }
    }
  });
  return p;
}
