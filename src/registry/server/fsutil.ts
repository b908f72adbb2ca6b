// Durable file operations for the registry store: a write becomes visible only by rename after
// its bytes were fsynced, and the directory is fsynced after the rename so the new name survives
// a power cut as well as a kill -9.
import { mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir, writeFileAtomic as writeAtomic } from '../../atomic-file.js';

export { fsyncDir };

export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Write `data` to `target` atomically and durably, its temp file in the store's `tmpDir`. */
export function writeFileAtomic(tmpDir: string, target: string, data: string | Uint8Array): Promise<void> {
  return writeAtomic(target, data, { durable: true, tmpDir });
}

/** Move an already-fsynced file into place and make the new name durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await rename(from, to);
  await fsyncDir(dirname(to));
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** readdir that treats a missing directory as empty. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}

/** Bytes an unprivileged writer may still use on the file system holding `dir`, if statfs can tell. */
export async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}
