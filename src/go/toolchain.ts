// Running the `go` command: one place that knows how to find it, set its environment and turn
// "not installed" into a clear error. Every call takes the iteration's AbortSignal, which kills
// the whole process tree of a `go build` when a newer save supersedes it.
import { execa, type ResultPromise } from 'execa';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';

export interface GoRunOptions {
  /** The `go` binary (KO_GO_PATH), default `go`. */
  goBinary: string;
  cwd: string;
  /** The complete environment for the child: callers resolve it from config, not process.env. */
  env: Record<string, string>;
  signal?: AbortSignal;
}

export interface GoResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export async function runGo(args: string[], options: GoRunOptions): Promise<GoResult> {
  const child: ResultPromise = execa(options.goBinary, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
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
  if (options.signal?.aborted) killGroup();
  options.signal?.addEventListener('abort', killGroup, { once: true });
  const result = await child.finally(() => options.signal?.removeEventListener('abort', killGroup));
  throwIfAborted(options.signal);
  const err = result as unknown as { code?: string; failed: boolean; exitCode?: number };
  if (err.code === 'ENOENT') {
    throw new TskoError('GO_MISSING', `the Go toolchain ("${options.goBinary}") was not found on PATH`, {
      hint: 'install Go (https://go.dev/dl) or point KO_GO_PATH at the go binary',
    });
  }
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: result.exitCode ?? 1 };
}
