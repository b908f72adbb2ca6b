// Runs the real `tsko` CLI (bin/tsko.js on the pinned Node 24) as a child process, the way a user
// would, and hands back exit code and output instead of throwing, so tests can assert on failures.
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root: this file runs from dist/test/support/, three levels below it. */
export const repoRoot: string = fileURLToPath(new URL('../../../', import.meta.url));

export interface TskoRunOptions {
  cwd?: string;
  /** Merged over the current environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
}

export interface TskoRunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const defaultTimeoutMs = 120_000;

function childEnv(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...overrides })) {
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/** Runs `tsko <args…>`; never rejects on a non-zero exit, only on a timeout or a failure to start. */
export async function runTsko(args: string[], options: TskoRunOptions = {}): Promise<TskoRunResult> {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const result = await execa(join(repoRoot, 'node_modules/.bin/node'), [join(repoRoot, 'bin/tsko.js'), ...args], {
    cwd: options.cwd ?? repoRoot,
    env: childEnv(options.env),
    extendEnv: false,
    input: options.input ?? '',
    timeout: timeoutMs,
    reject: false,
    stripFinalNewline: false,
  });
  if (result.timedOut) {
    throw new Error(`tsko ${args.join(' ')} timed out after ${timeoutMs} ms\nstderr:\n${result.stderr}`);
  }
  if (result.exitCode === undefined) {
    throw new Error(`tsko ${args.join(' ')} did not run: ${result.shortMessage}`);
  }
  return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}
