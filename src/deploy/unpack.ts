// Unpacks an image's layers into a revision's root filesystem without root, the way a container
// runtime's native snapshotter does: layers applied in order with tar semantics and OCI whiteouts,
// entries that would land outside the rootfs refused. Everything below the top layer is cached as
// one extracted tree per layer chain (keyed like OCI chain IDs, since a layer's result depends on
// what lies under it), so a warm revision clones that tree and extracts only the new top layer.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, open, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import * as tar from 'tar-stream';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import { digestHex } from '../image/digest.js';
import { readLayer } from '../image/layer.js';
import type { Layer } from '../image/types.js';

/** How a cached chain becomes a revision's tree: hard links share inodes, copies do not. */
export type CloneMode = 'link' | 'copy';

export interface UnpackOptions {
  /** Where extracted lower-layer chains are kept, one directory per chain ID. */
  cacheDir: string;
  signal?: AbortSignal;
  clone?: CloneMode;
}

export interface UnpackResult {
  /** The cached chains this rootfs was built from (directory names under cacheDir): keep them warm. */
  chains: string[];
  layers: number;
  /** Layers that came from the chain cache instead of being extracted. */
  cachedLayers: number;
  ms: number;
}

const MAX_SYMLINK_HOPS = 40;

/**
 * Builds `rootfs` (which must not exist) from `layers`. All but the top layer come from the chain
 * cache, which is filled on a miss; the top layer, the one a save changes, is extracted in place.
 */
export async function unpackImage(layers: readonly Layer[], rootfs: string, options: UnpackOptions): Promise<UnpackResult> {
  const started = performance.now();
  const clone = options.clone ?? 'link';
  const top = layers.at(-1);
  if (top === undefined) {
    await mkdir(rootfs, { recursive: true });
    return { chains: [], layers: 0, cachedLayers: 0, ms: performance.now() - started };
  }
  const lower = layers.slice(0, -1);
  let chains: string[] = [];
  let cachedLayers = 0;
  if (lower.length === 0) {
    await mkdir(rootfs, { recursive: true });
  } else {
    const ids = chainIds(lower);
    // The chain under the top layer is what the rootfs is cloned from; the one under that (for a
    // ko image, the base without kodata) is kept too, so a kodata edit extracts only kodata.
    chains = ids.slice(-2).reverse();
    await mkdir(options.cacheDir, { recursive: true });
    cachedLayers = await ensureChain(lower, ids, lower.length, options, clone, true);
    throwIfAborted(options.signal);
    await cloneTree(join(options.cacheDir, ids.at(-1) as string), rootfs, clone);
  }
  throwIfAborted(options.signal);
  await applyLayer(await readLayer(top, options.signal), rootfs, options.signal, layerName(top));
  return { chains, layers: layers.length, cachedLayers, ms: performance.now() - started };
}

/** OCI chain IDs of each prefix of `layers`, as hex (usable as directory names). */
export function chainIds(layers: readonly Layer[]): string[] {
  const ids: string[] = [];
  let previous: string | undefined;
  for (const layer of layers) {
    const id = previous === undefined ? layer.diffId : `sha256:${createHash('sha256').update(`${previous} ${layer.diffId}`).digest('hex')}`;
    ids.push(digestHex(id));
    previous = id;
  }
  return ids;
}

/** Removes cached chains other than `keep`, and temp trees an interrupted build left behind. */
export async function pruneChains(cacheDir: string, keep: ReadonlySet<string>): Promise<void> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  await Promise.all(names.filter((name) => !keep.has(name)).map((name) => removeTree(join(cacheDir, name))));
}

/**
 * Makes sure the chain of the first `count` layers is cached: built on the chain one shorter
 * (itself ensured when `viaPrefix`), else on the longest cached prefix, then renamed into place.
 * Returns how many layers were reused rather than extracted.
 */
async function ensureChain(lower: readonly Layer[], ids: readonly string[], count: number, options: UnpackOptions, clone: CloneMode, viaPrefix: boolean): Promise<number> {
  const chainDir = join(options.cacheDir, ids[count - 1] as string);
  if (await isDir(chainDir)) return count;
  let from = 0;
  let reused = 0;
  if (viaPrefix && count >= 2) {
    reused = await ensureChain(lower, ids, count - 1, options, clone, false);
    from = count - 1;
  } else {
    for (let i = count - 1; i >= 1; i--) {
      if (await isDir(join(options.cacheDir, ids[i - 1] as string))) {
        from = reused = i;
        break;
      }
    }
  }
  const temp = `${chainDir}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    if (from > 0) await cloneTree(join(options.cacheDir, ids[from - 1] as string), temp, clone);
    else await mkdir(temp, { recursive: true });
    for (const layer of lower.slice(from, count)) {
      throwIfAborted(options.signal);
      await applyLayer(await readLayer(layer, options.signal), temp, options.signal, layerName(layer));
    }
    await rename(temp, chainDir).catch(async (err: NodeJS.ErrnoException) => {
      // Someone else built the same chain meanwhile: theirs is as good as ours.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      await removeTree(temp);
    });
  } catch (err) {
    await removeTree(temp);
    throw err;
  }
  return reused;
}

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

function decompressorFor(bytes: Buffer): Transform | undefined {
  // By magic number rather than media type: registries and bases are loose about the latter.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return createGunzip({ chunkSize: 256 * 1024 });
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === 0xfd2fb528) return createZstdDecompress({ chunkSize: 256 * 1024 });
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

function layerName(layer: Layer): string {
  return `layer ${layer.digest.slice(0, 'sha256:'.length + 12)}`;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

async function isDir(path: string): Promise<boolean> {
  return lstat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

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
