// Directory trees of the local target's rootfs cache: cloned by hard links (one syscall a file,
// whatever its size) or copies, and removed even when an image made them read-only.
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';

/** How a cached chain becomes a revision's tree: hard links share inodes, copies do not. */
export type CloneMode = 'link' | 'copy';

/**
 * Copies the tree at `src` to `dst` (which must not exist): directories anew, files as hard links
 * or copies (reflinks where the filesystem can), symlinks as they are.
 */
export async function cloneTree(src: string, dst: string, mode: CloneMode): Promise<void> {
  const dirModes: Array<[string, number]> = [];
  const copy = async (from: string, to: string): Promise<void> => {
    if (mode === 'link') {
      try {
        await link(from, to);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Another filesystem, or an inode out of links: a copy is still right.
        if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM') throw err;
      }
    }
    await copyFile(from, to, fsConstants.COPYFILE_FICLONE);
  };
  const walk = async (from: string, to: string): Promise<void> => {
    const info = await lstat(from);
    await mkdir(to, { mode: 0o700 });
    dirModes.push([to, info.mode & 0o7777]);
    const entries = await readdir(from, { withFileTypes: true });
    await Promise.all(
      entries.map(async (entry) => {
        const a = join(from, entry.name);
        const b = join(to, entry.name);
        let kind: 'dir' | 'file' | 'symlink' | 'other';
        if (entry.isDirectory()) kind = 'dir';
        else if (entry.isFile()) kind = 'file';
        else if (entry.isSymbolicLink()) kind = 'symlink';
        else {
          // Some filesystems do not report types in readdir.
          const s = await lstat(a);
          kind = s.isDirectory() ? 'dir' : s.isFile() ? 'file' : s.isSymbolicLink() ? 'symlink' : 'other';
        }
        if (kind === 'dir') await walk(a, b);
        else if (kind === 'file') await copy(a, b);
        else if (kind === 'symlink') await symlink(await readlink(a), b);
      }),
    );
  };
  await walk(src, dst);
  dirModes.sort((a, b) => b[0].length - a[0].length);
  await Promise.all(dirModes.map(([path, m]) => chmod(path, m)));
}

/**
 * `rm -rf` that also works as a non-root user on trees with read-only directories (an image's
 * `/ko-app` is 0555): on EACCES, it makes directories writable and tries again.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 2, retryDelay: 20 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return;
  await chmod(dir, 0o700);
  const entries = await readdir(dir, { withFileTypes: true });
  await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => makeWritable(join(dir, e.name))));
}
