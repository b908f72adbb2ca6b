// Temporary directories for tests, removed when the test (or the test file) that made them ends,
// so a failing assertion never leaves layouts, bundles or registry storage behind in /tmp.
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Anything with node:test's `after(fn)`: a TestContext or a SuiteContext-like object. */
export interface AfterHook {
  after(fn: () => unknown): void;
}

/** Removes a directory tree; bounded retries cover a server still closing files in it. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}

// node:test's global `after()` attaches to whatever hook or test is running when it is called (from a
// `before` hook it fires as soon as that hook ends), so dirs without a `t` are removed at process
// exit instead: `node --test` runs each test file in its own process.
const removeAtExit = new Set<string>();

function registerExitCleanup(dir: string): void {
  if (removeAtExit.size === 0) {
    process.once('exit', () => {
      for (const d of removeAtExit) rmSync(d, { recursive: true, force: true });
    });
  }
  removeAtExit.add(dir);
}

/**
 * Makes a fresh directory under the OS temp dir. With `t` (a TestContext), it is removed when that
 * test ends; without, when the test file's process exits.
 */
export async function makeTempDir(prefix: string, t?: AfterHook): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `tsko-${prefix.replace(/[^\w.-]/g, '_')}-`));
  if (t === undefined) {
    registerExitCleanup(dir);
  } else {
    t.after(async () => {
      await removeDir(dir);
    });
  }
  return dir;
}

/** Runs `fn` with a fresh temp dir and removes the dir when `fn` settles, whatever the outcome. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `tsko-${prefix.replace(/[^\w.-]/g, '_')}-`));
  try {
    return await fn(dir);
  } finally {
    await removeDir(dir);
  }
}
