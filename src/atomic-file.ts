// Files that appear whole or not at all: written under a temp name beside the target (or in a
// given temp dir on the same filesystem) and renamed into place, so a crash or kill -9 never
// leaves half a file under the real name. `durable` also fsyncs the bytes before the rename and
// the directory after it, so the new name survives a power cut too (the registry's store).
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o666 before the umask). */
  mode?: number;
  /** fsync the data, then the directory after the rename. */
  durable?: boolean;
  /** Where the temp file goes (default: beside the target): an existing dir on the target's filesystem. */
  tmpDir?: string;
}

/** Writes `data` to `target` atomically. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  await replaceFileAtomic(
    target,
    async (temp) => {
      const handle = await open(temp, 'wx', options.mode);
      try {
        await handle.writeFile(data);
        if (options.durable) await handle.sync();
      } finally {
        await handle.close();
      }
    },
    options,
  );
}

/** Lets `produce` write the temp file however it likes (a stream), then renames it to `target`. */
export async function replaceFileAtomic(target: string, produce: (temp: string) => Promise<void>, options: Pick<AtomicWriteOptions, 'durable' | 'tmpDir'> = {}): Promise<void> {
  const dir = dirname(target);
  if (options.tmpDir === undefined) await mkdir(dir, { recursive: true });
  const temp = join(options.tmpDir ?? dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await produce(temp);
    if (options.tmpDir !== undefined) await mkdir(dir, { recursive: true });
    await rename(temp, target);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  if (options.durable) await fsyncDir(dir);
}

/** Makes the rename of a child of `dir` durable. Some filesystems refuse fsync on a directory; that is not an error here. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}
