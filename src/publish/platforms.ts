// One import path for one or several platforms: each platform is one Builder call (all at once,
// the first failure cancelling the others); several platforms make an image index (or a Docker
// manifest list, following the base) over the images. `all` means every platform the base
// image's index offers. The result is what a Publisher takes.
import { TskoError } from '../errors.js';
import { DEFAULT_PLATFORM, formatPlatform } from '../go/platform.js';
import { BUILTIN_STATIC } from '../image/builtin-base.js';
import { sha256 } from '../image/digest.js';
import { buildIndex, type ImageIndex } from '../image/index.js';
import type { Platform } from '../image/types.js';
import type { BaseResolver } from './base.js';
import type { Builder, BuildContext, BuiltImage, ResolvedTarget } from './builder.js';

/** What `--platform all` builds on builtin://static, which has no index to ask. */
export const BUILTIN_ALL_PLATFORMS: readonly Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64' },
];

/** An import path built: one image per platform, and the index over them when there are several. */
export interface BuildResult {
  importPath: string;
  /** In the index's order. */
  images: BuiltImage[];
  index?: ImageIndex;
  /** The digest a reference to the result names: the index's, else the one image's. */
  digest: string;
}

export interface PlatformBuildOptions {
  /** --image-annotation values, for the index (the builder sets them on each image). */
  annotations?: Record<string, string>;
}

export async function buildForPlatforms(builder: Builder, target: ResolvedTarget, platforms: readonly Platform[], context: BuildContext, options: PlatformBuildOptions = {}): Promise<BuildResult> {
  const importPath = target.pkg.importPath;
  if (platforms.length === 0) throw new TskoError('PLATFORM', 'no platform to build');
  if (platforms.length === 1) {
    const image = await builder.build(target, platforms[0] as Platform, context);
    return { importPath, images: [image], digest: image.image.manifestDigest };
  }
  const images = await allOrNothing(platforms, context.signal, (platform, signal) => builder.build(target, platform, { ...context, signal }));
  const index = buildIndex(images.map((b) => b.image), indexOptions(images, options));
  return { importPath, images, index, digest: index.digest };
}

/** `all` = the base index's platforms (builtin://static: amd64 and arm64); duplicates dropped. */
export async function platformsToBuild(bases: BaseResolver, baseName: string, requested: readonly Platform[] | 'all', signal?: AbortSignal): Promise<Platform[]> {
  let platforms: readonly Platform[];
  if (requested === 'all') {
    if (baseName === BUILTIN_STATIC) {
      platforms = BUILTIN_ALL_PLATFORMS;
    } else {
      const offered = await bases.platforms(baseName, signal);
      if (offered) {
        platforms = offered;
      } else {
        // A single-platform base: `all` is the one platform it is for.
        const base = await bases.resolve(baseName, DEFAULT_PLATFORM, signal);
        platforms = [{ os: base.config.os, architecture: base.config.architecture, ...(base.config.variant ? { variant: base.config.variant } : {}) }];
      }
    }
    if (platforms.length === 0) throw new TskoError('PLATFORM', `--platform all: base image ${baseName} lists no usable platform`);
  } else {
    platforms = requested;
  }
  const unique = new Map(platforms.map((p) => [formatPlatform(p), p]));
  if (unique.size === 0) throw new TskoError('PLATFORM', 'no platform to build');
  return [...unique.values()];
}

/** Runs `work` for every item at once; the first failure aborts the rest (through their signal) and is thrown. */
async function allOrNothing<T, R>(items: readonly T[], signal: AbortSignal | undefined, work: (item: T, signal: AbortSignal) => Promise<R>): Promise<R[]> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.all(
      items.map((item) =>
        work(item, controller.signal).catch((err: unknown) => {
          controller.abort(err);
          throw err;
        }),
      ),
    );
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * ko's base annotations on the index name the base's index. builtin://static has no index of its
 * own, so its stand-in digest is the hash of the per-platform base digests it was built on.
 */
function indexOptions(built: BuiltImage[], options: PlatformBuildOptions): Parameters<typeof buildIndex>[1] {
  const base = (built[0] as BuiltImage).base;
  const digest = base.indexDigest ?? sha256(JSON.stringify(built.map((b) => b.base.digest)));
  return { base: { name: base.name, digest }, ...(options.annotations ? { annotations: options.annotations } : {}) };
}
