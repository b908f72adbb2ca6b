// One layer applied onto a tree the way a container runtime applies it, without root: gzip, zstd
// or plain tar by magic number; an entry replaces what lies at its path (never writing through a
// hard link a cached tree may share), directories merge, OCI whiteouts and opaque dirs remove what
// lies below, and no entry or link target may land outside the root.
import { chmod, link, lstat, mkdir, open, readdir, readlink, symlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable, type Duplex } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import { createZstdFramesDecompress } from '../image/decompress.js';
import { removeTree } from './tree.js';

const MAX_SYMLINK_HOPS = 40;

/** Applies one layer (gzip, zstd or plain tar) on top of the tree at `root`; `what` names it in errors. */
export async function applyLayer(bytes: Buffer, root: string, signal?: AbortSignal, what = 'a layer'): Promise<void> {
  const extract = tar.extract();
  const decompress = decompressorFor(bytes);
  const source = Readable.from([bytes]);
  // The first failure of the input side; the entry being read only sees "stream destroyed".
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    extract.destroy(err);
  };
  source.on('error', fail);
  if (decompress) {
    decompress.on('error', (err) => fail(new TskoError('DEPLOY', `${what} could not be decompressed: ${err.message}`, { cause: err })));
    source.pipe(decompress).pipe(extract as unknown as NodeJS.WritableStream);
  } else {
    source.pipe(extract as unknown as NodeJS.WritableStream);
  }
  const applier = new LayerApplier(root);
  try {
    for await (const entry of extract) {
      throwIfAborted(signal);
      await applier.apply(entry.header, entry);
    }
  } catch (err) {
    source.unpipe();
    decompress?.destroy();
    extract.destroy();
    const cause = failure ?? err;
    // A file system error (it has a syscall) or ours as it is; anything else is tar-stream's
    // verdict on the archive (a bad header, a truncated entry).
    if (cause instanceof TskoError || (cause as NodeJS.ErrnoException).syscall !== undefined) throw cause;
    throw new TskoError('DEPLOY', `${what} is not a valid tar archive: ${(cause as Error).message}`, { cause });
  }
  await applier.finish();
}

function decompressorFor(bytes: Buffer): Duplex | undefined {
  // By magic number rather than media type: registries and bases are loose about the latter.
  // gunzip reads every gzip member; Node's zstd decoder reads only the first frame, so zstd
  // (several frames in zstd:chunked layers) goes through a decoder that reads them all.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return createGunzip({ chunkSize: 256 * 1024 });
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === 0xfd2fb528) return createZstdFramesDecompress();
  return undefined;
}

type EntryHeader = tar.Header;
type EntryStream = AsyncIterable<unknown> & { resume(): unknown };

/**
 * Tar semantics for one layer: an entry replaces what lies at its path (unlinking first, never
 * writing through: a cached tree's files may be hard links), directories merge, parents resolve
 * through symlinks as if the rootfs were `/`. Paths are relative to the root, `''` being the root.
 */
class LayerApplier {
  private readonly root: string;
  /** Archive directory → where it really is, after following symlinks inside the rootfs. */
  private readonly dirs = new Map<string, string>([['', '']]);
  /** Paths this layer created anew: whiteouts and opaque dirs spare them. */
  private readonly fresh = new Set<string>();
  /** Every ancestor of something this layer wrote, so an opaque dir keeps those subtrees. */
  private readonly touched = new Set<string>();
  /** Final directory modes, set at the end so a read-only dir can still be filled first. */
  private readonly dirModes = new Map<string, number>();

  constructor(root: string) {
    this.root = root;
  }

  async apply(header: EntryHeader, stream: EntryStream): Promise<void> {
    const name = archivePath(header.name);
    if (name === '') {
      stream.resume();
      return;
    }
    const base = posix.basename(name);
    if (base.startsWith('.wh.')) {
      stream.resume();
      // A whiteout under a directory no lower layer has hides nothing (and creates nothing).
      const parent = await this.resolveDir(parentOf(name), false);
      if (parent === undefined) return;
      if (base === '.wh..wh..opq') await this.opaque(parent);
      else await this.whiteout(join2(parent, base.slice('.wh.'.length)));
      return;
    }
    const parent = (await this.resolveDir(parentOf(name), true)) as string;
    const path = join2(parent, base);
    switch (header.type) {
      case 'directory': {
        stream.resume();
        const created = await this.makeDir(path, header.mode);
        this.dirs.set(name, path);
        // A directory a lower layer had is not this layer's: an opaque parent still clears it.
        if (!created) {
          this.markTouched(path);
          return;
        }
        break;
      }
      case 'file':
      case 'contiguous-file':
        await this.writeFile(path, header, stream);
        break;
      case 'symlink':
        stream.resume();
        await this.replace(path, (abs) => symlink(inRootTarget(path, header.linkname), abs));
        break;
      case 'link': {
        stream.resume();
        const target = archivePath(header.linkname);
        const targetDir = await this.resolveDir(parentOf(target), false);
        const targetPath = join2(targetDir ?? parentOf(target), posix.basename(target));
        await this.replace(path, (abs) => link(this.abs(targetPath), abs)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          throw new TskoError('DEPLOY', `layer entry ${name} is a hard link to ${target}, which the image does not contain`);
        });
        break;
      }
      default:
        // Devices and fifos need root to create, and a revision gets no /dev of its own anyway.
        stream.resume();
        return;
    }
    this.markWritten(path);
  }

  async finish(): Promise<void> {
    // Deepest first, so a parent losing its write bit does not block its children's chmod.
    const dirs = [...this.dirModes].sort((a, b) => b[0].length - a[0].length);
    for (const [path, mode] of dirs) await chmod(this.abs(path), mode & 0o7777);
  }

  private abs(path: string): string {
    return path === '' ? this.root : join(this.root, path);
  }

  private markWritten(path: string): void {
    this.fresh.add(path);
    this.markTouched(parentOf(path));
  }

  private markTouched(path: string): void {
    for (let dir = path; dir !== '' && !this.touched.has(dir); dir = parentOf(dir)) this.touched.add(dir);
  }

  /**
   * Where an archive directory really is. Missing ones are created (mode 0755, as tar does) when
   * `create`, else the answer is undefined.
   */
  private async resolveDir(dir: string, create: true): Promise<string>;
  private async resolveDir(dir: string, create: boolean): Promise<string | undefined>;
  private async resolveDir(dir: string, create: boolean): Promise<string | undefined> {
    const known = this.dirs.get(dir);
    if (known !== undefined) return known;
    const parent = await this.resolveDir(parentOf(dir), create);
    if (parent === undefined) return undefined;
    const real = await this.step(parent, posix.basename(dir), 0, create);
    if (real !== undefined) this.dirs.set(dir, real);
    return real;
  }

  /** One path component below `parent` (already real), following a symlink inside the rootfs. */
  private async step(parent: string, base: string, hops: number, create: boolean): Promise<string | undefined> {
    const path = join2(parent, base);
    const info = await lstat(this.abs(path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (info === undefined) {
      if (!create) return undefined;
      await mkdir(this.abs(path), { mode: 0o755 });
      this.markWritten(path);
      return path;
    }
    if (info.isDirectory()) return path;
    if (!info.isSymbolicLink()) throw new TskoError('DEPLOY', `a layer puts files under /${path}, which is not a directory`);
    if (hops >= MAX_SYMLINK_HOPS) throw new TskoError('DEPLOY', `too many levels of symbolic links at /${path}`);
    const target = await readlink(this.abs(path));
    let current: string | undefined = target.startsWith('/') ? '' : parent;
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') current = parentOf(current);
      else current = await this.step(current, part, hops + 1, create);
      if (current === undefined) return undefined;
    }
    return current;
  }

  /** Resolves true when the directory is new, false when a lower layer had it. */
  private async makeDir(path: string, mode: number): Promise<boolean> {
    let created = true;
    try {
      await mkdir(this.abs(path), { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const info = await lstat(this.abs(path));
      if (info.isDirectory()) {
        created = false;
      } else {
        await this.remove(path);
        await mkdir(this.abs(path), { mode: 0o700 });
      }
    }
    this.dirModes.set(path, mode);
    return created;
  }

  private async writeFile(path: string, header: EntryHeader, stream: EntryStream): Promise<void> {
    const abs = this.abs(path);
    const handle = await open(abs, 'wx', 0o600).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
      await this.remove(path);
      return open(abs, 'wx', 0o600);
    });
    try {
      for await (const chunk of stream) await handle.write(chunk as Uint8Array);
      // Explicitly, since open() applies the umask and would drop group/other bits. Not setuid
      // or setgid: the revision runs as the user running tsko, so they would only be a hazard.
      await handle.chmod(header.mode & 0o1777);
      await handle.utimes(header.mtime, header.mtime);
    } finally {
      await handle.close();
    }
  }

  /** Creates something at `path`, replacing whatever a lower layer left there. */
  private async replace(path: string, create: (abs: string) => Promise<void>): Promise<void> {
    try {
      await create(this.abs(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      await this.remove(path);
      await create(this.abs(path));
    }
  }

  private async whiteout(path: string): Promise<void> {
    // A whiteout hides lower layers only: an entry this same layer wrote stays.
    if (this.fresh.has(path)) return;
    await this.remove(path);
  }

  /** `.wh..wh..opq`: the directory keeps only what this layer put in it. */
  private async opaque(dir: string): Promise<void> {
    if (this.fresh.has(dir)) return;
    const names = await readdir(this.abs(dir)).catch(() => [] as string[]);
    for (const name of names) {
      const path = join2(dir, name);
      if (this.fresh.has(path)) continue;
      if (this.touched.has(path) || this.dirModes.has(path)) await this.opaque(path);
      else await this.remove(path);
    }
  }

  private async remove(path: string): Promise<void> {
    await removeTree(this.abs(path));
    // Removing a symlink or a directory may change where archive dirs resolve: start over.
    this.dirs.clear();
    this.dirs.set('', '');
    for (const dir of this.dirModes.keys()) if (dir === path || dir.startsWith(`${path}/`)) this.dirModes.delete(dir);
  }
}

/** An archive member's path relative to the root; one that climbs out of it is refused. */
export function archivePath(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new TskoError('DEPLOY', `a layer entry escapes the rootfs: ${name}`);
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join('/');
}

/**
 * A symlink's target as it must be written so that, followed on the host (no chroot), it lands
 * where it would inside the container: absolute targets become relative to the link, and `..`
 * stops at the rootfs root instead of climbing out of it.
 */
export function inRootTarget(linkPath: string, target: string): string {
  const from = parentOf(linkPath);
  const parts = target.startsWith('/') || from === '' ? [] : from.split('/');
  let clamped = target.startsWith('/');
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) clamped = true;
      else parts.pop();
    } else {
      parts.push(part);
    }
  }
  if (!clamped) return target;
  return posix.relative(`/${from}`, `/${parts.join('/')}`) || '.';
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}
