// Running the `go` command: one place that knows how to find it, set its environment and turn
// "not installed" into a clear error. Every call takes the iteration's AbortSignal, which kills
// the whole process tree of a `go build` when a newer save supersedes it.
import { spawn } from 'node:child_process';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';

export interface GoRunOptions {
  /** The `go` binary (KO_GO_PATH), default `go`. */
  goBinary: string;
  cwd: string;
  /** The complete environment for the child: callers resolve it from config, not process.env. */
  env: Record<string, string>;
  signal?: AbortSignal;
  /** Called once go is running, for work that can share the machine with it. */
  whileRunning?: () => void;
}

export interface GoResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

// node:child_process rather than execa: every one-shot command runs go, and execa's ~110 modules
// cost more start-up time than the few lines below.
export async function runGo(args: string[], options: GoRunOptions): Promise<GoResult> {
  throwIfAborted(options.signal);
  const child = spawn(options.goBinary, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // go build spawns compile/link children; its own process group lets an abort kill them all.
    detached: true,
  });
  const killGroup = () => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  options.signal?.addEventListener('abort', killGroup, { once: true });
  if (options.whileRunning && child.pid !== undefined) setImmediate(options.whileRunning);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  // 'close' comes after both pipes are drained; 'error' alone when go could not be started.
  const outcome = await new Promise<{ code: number | null } | { error: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ error }));
    child.once('close', (code: number | null) => resolve({ code }));
  }).finally(() => options.signal?.removeEventListener('abort', killGroup));
  throwIfAborted(options.signal);
  if ('error' in outcome) {
    if (outcome.error.code === 'ENOENT') {
      throw new TskoError('GO_MISSING', `the Go toolchain ("${options.goBinary}") was not found on PATH`, {
        hint: 'install Go (https://go.dev/dl) or point KO_GO_PATH at the go binary',
      });
    }
    return { stdout: '', stderr: `cannot run ${options.goBinary}: ${outcome.error.message}`, exitCode: 1 };
  }
  return { stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), exitCode: outcome.code ?? 1 };
}
