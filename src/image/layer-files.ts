// Where the layers tsko writes live while a command runs: one directory per pipeline under the
// cache (`<root>/<pid>-<random>`), a file per layer named by its digest, plus private snapshots of
// the binaries they were made from. Bytes on disk rather than in memory keep a daemon's memory
// flat whatever the binary's size; the embedded registry in the same process takes a layer file by
// hard link, and the local target links a snapshot into a revision's rootfs. The directory goes
// when its owner closes; one that a killed process left behind is removed by the next one opened.
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export class LayerFiles {
  private readonly root: string;
  private made: Promise<string> | undefined;
  private closed = false;

  constructor(root: string) {
    this.root = root;
  }

  /** A new path in the directory, for a file about to be written. */
  async tempPath(): Promise<string> {
    return join(await this.dir(), `tmp-${randomBytes(6).toString('hex')}`);
  }

  /** Moves a written temp file to its name by digest; the same bytes written before are replaced by the same bytes. */
  async keep(temp: string, digestHex: string): Promise<string> {
    const path = join(await this.dir(), `${digestHex}.layer`);
    await rename(temp, path);
    return path;
  }

  /**
   * A private link to `file`, which another program (go build) replaces with a new file on its
   * next run: the snapshot keeps these bytes for as long as something uses them. A copy where a
   * link is refused (another filesystem).
   */
  async snapshot(file: string): Promise<string> {
    const path = join(await this.dir(), `bin-${randomBytes(6).toString('hex')}`);
    await link(file, path).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EXDEV' && err.code !== 'EPERM') throw err;
      await copyFile(file, path);
    });
    return path;
  }

  /** Removes files no longer used (a reader that opened one before keeps reading it). */
  async remove(paths: Iterable<string>): Promise<void> {
    await Promise.all([...paths].map((path) => unlink(path).catch(() => undefined)));
  }

  async close(): Promise<void> {
    this.closed = true;
    const made = this.made;
    this.made = undefined;
    const dir = made ? await made.catch(() => undefined) : undefined;
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }

  private dir(): Promise<string> {
    if (this.closed) return Promise.reject(new Error('layer files are closed'));
    this.made ??= (async () => {
      await mkdir(this.root, { recursive: true });
      await removeAbandoned(this.root);
      const dir = join(this.root, `${process.pid}-${randomBytes(4).toString('hex')}`);
      await mkdir(dir);
      return dir;
    })();
    // A failure (a cache dir that cannot be made) is tried again on the next layer.
    this.made.catch(() => (this.made = undefined));
    return this.made;
  }
}

/** Directories of processes that are gone (killed before they could close theirs). */
async function removeAbandoned(root: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((name) => {
        const pid = Number(name.split('-')[0]);
        return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isAlive(pid);
      })
      .map((name) => rm(join(root, name), { recursive: true, force: true }).catch(() => undefined)),
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
