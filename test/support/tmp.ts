// Temporary directories for tests, removed when the test (or the test file) that made them ends,
// so a failing assertion never leaves layouts, bundles or registry storage behind in /tmp.
import { after } from 'node:test';
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

/**
 * Makes a fresh directory under the OS temp dir. With `t`, it is removed when that test ends;
 * without, when the enclosing suite (at worst the test file) ends.
 */
export async function makeTempDir(prefix: string, t?: AfterHook): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `tsko-${prefix.replace(/[^\w.-]/g, '_')}-`));
  const cleanup = (): Promise<void> => removeDir(dir);
  if (t === undefined) after(cleanup);
  else t.after(cleanup);
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
