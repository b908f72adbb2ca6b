// Unpacks an image's layers into a revision's root filesystem without root, the way a container
// runtime's native snapshotter does: layers applied in order (layer-apply.ts: tar semantics, OCI
// whiteouts, nothing outside the rootfs). Everything below the top layer is cached as one
// extracted tree per layer chain (keyed like OCI chain IDs, since a layer's result depends on what
// lies under it), so a warm revision clones that tree (tree.ts) and adds only the new top layer —
// linking its files when the layer lists them as files on this machine (the binary layer tsko just
// wrote: nothing to read or extract), else extracting it.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, readdir, rename, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { throwIfAborted } from '../abort.js';
import { digestHex } from '../image/digest.js';
import { readLayer } from '../image/layer.js';
import type { Layer, LayerFile, RunnableImage } from '../image/types.js';
import { applyLayer, archivePath } from './layer-apply.js';
import { TskoError } from '../errors.js';
import { cloneTree, removeTree, type CloneMode } from './tree.js';

/**
 * A chain used within this long is kept by pruneChains even when this target no longer needs it:
 * two `tsko dev` sessions of one service (on two ports) share the cache directory.
 */
const CHAIN_GRACE_MS = 10 * 60 * 1000;

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

/**
 * Builds `rootfs` (which must not exist) from `layers`. All but the top layer come from the chain
 * cache, which is filled on a miss; the top layer, the one a save changes, is extracted in place.
 */
export function unpackImage(layers: readonly Layer[], rootfs: string, options: UnpackOptions): Promise<UnpackResult> {
  return unpackRunnable({ lower: layers.slice(0, -1), top: layers.at(-1) }, rootfs, options);
}

/**
 * The same for an image whose top layer may be known only by its files (a binary whose layer is
 * still being packed): those are linked in, so the revision runs the bytes the layer will hold.
 */
export async function unpackRunnable(image: Pick<RunnableImage, 'lower' | 'top'>, rootfs: string, options: UnpackOptions): Promise<UnpackResult> {
  const started = performance.now();
  const clone = options.clone ?? 'link';
  const { lower, top } = image;
  if (top === undefined) {
    await mkdir(rootfs, { recursive: true });
    return { chains: [], layers: lower.length, cachedLayers: 0, ms: performance.now() - started };
  }
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
    // Marked as in use: another session's prune (same service, another port) leaves it alone.
    const now = new Date();
    await Promise.all(chains.map((id) => utimes(join(options.cacheDir, id), now, now).catch(() => undefined)));
    throwIfAborted(options.signal);
    await cloneTree(join(options.cacheDir, ids.at(-1) as string), rootfs, clone);
  }
  throwIfAborted(options.signal);
  if (top.files) await placeFiles(top.files, rootfs, clone);
  else if ('digest' in top) await applyLayer(await readLayer(top, options.signal), rootfs, options.signal, layerName(top));
  return { chains, layers: lower.length + 1, cachedLayers, ms: performance.now() - started };
}

/**
 * Puts a layer's entries, given as files on this machine, into `root`: directories made, files
 * linked (or copied) over whatever lies at their path, final directory modes set last so a
 * read-only directory can still be filled. The result is the tree extracting the layer would give.
 */
async function placeFiles(files: readonly LayerFile[], root: string, clone: CloneMode): Promise<void> {
  const dirModes: Array<[string, number]> = [];
  for (const file of files) {
    const path = join(root, archivePath(file.name));
    if (file.type === 'directory') {
      await mkdir(path, { recursive: true, mode: 0o700 });
      dirModes.push([path, file.mode]);
      continue;
    }
    if (file.source === undefined) throw new TskoError('INTERNAL', `layer file ${file.name} has no source`);
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await removeTree(path);
    if (clone === 'link') {
      const linked = await link(file.source, path).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code !== 'EXDEV' && err.code !== 'EMLINK' && err.code !== 'EPERM') throw err;
          return false;
        },
      );
      if (linked) continue;
    }
    await copyFile(file.source, path, fsConstants.COPYFILE_FICLONE);
    await chmod(path, file.mode & 0o7777);
  }
  for (const [path, mode] of dirModes.reverse()) await chmod(path, mode & 0o7777);
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

/**
 * Removes cached chains other than `keep`, and temp trees an interrupted build left behind, once
 * nothing has used them for `graceMs` (another session of the same service may be using them).
 */
export async function pruneChains(cacheDir: string, keep: ReadonlySet<string>, graceMs = CHAIN_GRACE_MS): Promise<void> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  const before = Date.now() - graceMs;
  await Promise.all(
    names
      .filter((name) => !keep.has(name))
      .map(async (name) => {
        const path = join(cacheDir, name);
        // Used lately (or being built) by another tsko dev of the same service: not ours to remove.
        const info = await lstat(path).catch(() => undefined);
        if (info && info.mtimeMs < before) await removeTree(path);
      }),
  );
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

function layerName(layer: Layer): string {
  return `layer ${layer.digest.slice(0, 'sha256:'.length + 12)}`;
}

async function isDir(path: string): Promise<boolean> {
  return lstat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}
