// One import path → one published reference: build for each platform (in parallel, each build
// taking one of the pipeline's --jobs slots), then push to the registry and/or write an OCI layout
// or tarball. One platform gives a plain manifest; several give an image index (or a Docker
// manifest list, following the base) pushed after its children. Each image's SPDX SBOM goes next
// to it. Shared by `tsko build`, `resolve`, `apply`, `run` and `dev`.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { readBuildInfo } from '../go/buildinfo.js';
import { DEFAULT_PLATFORM, formatPlatform } from '../go/platform.js';
import { attachmentTag, fileArtifact } from '../image/artifact.js';
import { BUILTIN_STATIC } from '../image/builtin-base.js';
import { sha256 } from '../image/digest.js';
import { buildIndex } from '../image/index.js';
import { writeOciLayout, writeOciLayoutIndex, type LayerBytes } from '../image/layout.js';
import { SPDX_JSON } from '../image/media-types.js';
import { writeTarball } from '../image/tarball.js';
import type { Image, Layer, Platform } from '../image/types.js';
import { parseRepository, type Repository } from '../registry/reference.js';
import type { BuiltImage, ResolvedTarget } from './builder.js';
import { imageName, type NamingMode } from './naming.js';
import type { Pipeline } from './pipeline.js';
import { sbomFileName, spdxBytes, spdxDocument } from './sbom.js';

/** What `--platform all` builds on builtin://static, which has no index to ask. */
export const BUILTIN_ALL_PLATFORMS: readonly Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64' },
];

const TOOL = 'tsko 0.1.0';

export interface PublishRequest {
  /** KO_DOCKER_REPO (or the embedded registry's address). */
  dockerRepo: string;
  naming: NamingMode;
  tags: string[];
  /** The platforms to build, or `all`: every platform the base image's index offers. */
  platforms: readonly Platform[] | 'all';
  push: boolean;
  ociLayoutPath?: string;
  tarball?: string;
  /** `spdx` pushes an SBOM next to every image (ko's default); absent or `none`: no SBOM. */
  sbom?: 'spdx' | 'none';
  /** Also write each image's SBOM here as `<app>-<os>-<arch>.spdx.json`. */
  sbomDir?: string;
  /** --image-annotation values, for the index (the builder sets them on each image). */
  annotations?: Record<string, string>;
}

export interface PublishedChild {
  platform: Platform;
  digest: string;
  /** name@sha256:… of this platform's image. */
  reference: string;
}

export interface PublishResult {
  importPath: string;
  /** The line printed on stdout. */
  reference: string;
  digest: string;
  built: BuiltImage[];
  /** Each platform's image when the result is an index, in the index's order (ko #555). */
  children?: PublishedChild[];
  /** References of the SBOMs pushed, one per image. */
  sboms: string[];
  blobsPushed: number;
  blobsSkipped: number;
  bytesPushed: number;
}

export async function buildAndPublish(pipeline: Pipeline, target: string | ResolvedTarget, request: PublishRequest, events: EventBus, signal?: AbortSignal): Promise<PublishResult> {
  const resolved = typeof target === 'string' ? await pipeline.builder.resolveTarget(target, signal) : target;
  const importPath = resolved.pkg.importPath;
  const platforms = await platformsFor(pipeline, importPath, request.platforms, signal);
  if (platforms.length > 1 && request.tarball) {
    throw new TskoError('USAGE', `--tarball can hold only one platform, but ${importPath} builds ${platforms.map(formatPlatform).join(', ')}`, {
      hint: 'pass a single --platform, or use --oci-layout-path for a multi-platform image',
    });
  }

  const built = await buildAll(pipeline, resolved, platforms, events, signal);
  const first = built[0] as BuiltImage;
  const name = imageName(request.dockerRepo, importPath, request.naming);
  const repository = repositoryOf(name, request.dockerRepo);
  const index = built.length > 1 ? buildIndex(built.map((b) => b.image), indexOptions(built, request)) : undefined;

  const sboms = request.sbom === 'spdx' || request.sbomDir ? await makeSboms(pipeline, built, name, signal) : [];
  if (request.sbomDir) {
    await mkdir(request.sbomDir, { recursive: true });
    for (const [i, b] of built.entries()) {
      const file = join(request.sbomDir, sbomFileName(b.appName, b.platform));
      await writeFile(file, sboms[i] as Buffer);
      events.emit({ type: 'log', level: 'info', message: `Wrote SBOM of ${importPath} (${formatPlatform(b.platform)}) to ${file}` });
    }
  }

  const layerBytes: LayerBytes = (layer: Layer) =>
    layer.source.kind === 'memory'
      ? Promise.resolve(layer.source.data)
      : pipeline.client.getBlob({ registry: layer.source.registry, repository: layer.source.repository }, layer.digest, signal);
  if (request.ociLayoutPath) {
    const tag = request.tags[0] ?? 'latest';
    if (index) await writeOciLayoutIndex(request.ociLayoutPath, index, { tag, layerBytes });
    else await writeOciLayout(request.ociLayoutPath, first.image, { tag, layerBytes });
    events.emit({ type: 'log', level: 'info', message: `Wrote ${importPath} (${platforms.map(formatPlatform).join(', ')}) to OCI layout ${request.ociLayoutPath}` });
  }
  if (request.tarball) {
    await writeTarball(request.tarball, first.image, { repoTags: request.tags.map((tag) => `${name}:${tag}`), layerBytes });
    events.emit({ type: 'log', level: 'info', message: `Wrote ${importPath} to tarball ${request.tarball}` });
  }

  const digest = index ? index.digest : first.image.manifestDigest;
  const children = index ? childrenOf(name, built) : undefined;
  if (!request.push) {
    return {
      importPath,
      reference: `${name}:${request.tags[0] ?? 'latest'}@${digest}`,
      digest,
      built,
      ...(children ? { children } : {}),
      sboms: [],
      blobsPushed: 0,
      blobsSkipped: 0,
      bytesPushed: 0,
    };
  }

  events.emit({ type: 'stage.start', stage: 'push', importPath });
  const started = performance.now();
  let ok = false;
  try {
    const published = index
      ? await pipeline.publisher.publishIndex(index, repository, request.tags, signal, events)
      : await pipeline.publisher.publish(first.image, repository, request.tags, signal, events);
    const sbomRefs =
      request.sbom === 'spdx' ? await pushSboms(pipeline, repository, built.map((b) => b.image), sboms, events, signal) : [];
    ok = true;
    const { blobsPushed, blobsSkipped, bytesPushed } = published.stats;
    events.emit({ type: 'published', importPath, reference: published.reference, blobsPushed, blobsSkipped, bytesPushed });
    return {
      importPath,
      reference: published.reference,
      digest: published.digest,
      built,
      ...(children ? { children } : {}),
      sboms: sbomRefs,
      blobsPushed,
      blobsSkipped,
      bytesPushed,
    };
  } finally {
    events.emit({ type: 'stage.end', stage: 'push', importPath, ms: performance.now() - started, ok });
  }
}

/** `all` = the base index's platforms (builtin://static: amd64 and arm64); duplicates dropped. */
async function platformsFor(pipeline: Pipeline, importPath: string, requested: readonly Platform[] | 'all', signal?: AbortSignal): Promise<Platform[]> {
  let platforms: readonly Platform[];
  if (requested === 'all') {
    const baseName = pipeline.builder.baseNameFor(importPath);
    if (baseName === BUILTIN_STATIC) {
      platforms = BUILTIN_ALL_PLATFORMS;
    } else {
      const offered = await pipeline.bases.platforms(baseName, signal);
      if (offered) {
        platforms = offered;
      } else {
        // A single-platform base: `all` is the one platform it is for.
        const base = await pipeline.bases.resolve(baseName, DEFAULT_PLATFORM, signal);
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

/** Every platform at once, each in a build slot; the first failure cancels the others. */
async function buildAll(pipeline: Pipeline, resolved: ResolvedTarget, platforms: Platform[], events: EventBus, signal?: AbortSignal): Promise<BuiltImage[]> {
  if (platforms.length === 1) {
    const platform = platforms[0] as Platform;
    return [await pipeline.buildSlots.run(() => pipeline.builder.build(resolved, platform, signal, events), signal)];
  }
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.all(
      platforms.map((platform) =>
        pipeline.buildSlots.run(() => pipeline.builder.build(resolved, platform, controller.signal, events), controller.signal).catch((err: unknown) => {
          controller.abort(err);
          throw err;
        }),
      ),
    );
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

function repositoryOf(name: string, dockerRepo: string): Repository {
  try {
    return parseRepository(name);
  } catch (err) {
    throw new TskoError('KO_DOCKER_REPO', `KO_DOCKER_REPO="${dockerRepo}" gives an invalid image name "${name}"`, {
      cause: err,
      hint: 'KO_DOCKER_REPO is a registry and repository prefix such as 127.0.0.1:5000/team or gcr.io/my-project',
    });
  }
}

/**
 * ko's base annotations on the index name the base's index. builtin://static has no index of its
 * own, so its stand-in digest is the hash of the per-platform base digests it was built on.
 */
function indexOptions(built: BuiltImage[], request: PublishRequest): Parameters<typeof buildIndex>[1] {
  const base = (built[0] as BuiltImage).base;
  const digest = base.indexDigest ?? sha256(JSON.stringify(built.map((b) => b.base.digest)));
  return { base: { name: base.name, digest }, ...(request.annotations ? { annotations: request.annotations } : {}) };
}

function childrenOf(name: string, built: BuiltImage[]): PublishedChild[] {
  return built.map((b) => ({ platform: b.platform, digest: b.image.manifestDigest, reference: `${name}@${b.image.manifestDigest}` }));
}

async function makeSboms(pipeline: Pipeline, built: BuiltImage[], name: string, signal?: AbortSignal): Promise<Buffer[]> {
  const { config } = pipeline;
  return Promise.all(
    built.map(async (b) => {
      const info = await readBuildInfo(b.binaryPath, { goBinary: config.goBinary, cwd: config.cwd, env: { ...config.env }, ...(signal ? { signal } : {}) });
      const document = spdxDocument(info, { digest: b.image.manifestDigest, platform: b.platform, repository: name }, { created: b.image.config.created ?? '1970-01-01T00:00:00Z', tool: TOOL });
      return spdxBytes(document);
    }),
  );
}

/** Each image's SBOM under ko's `sha256-<hex>.sbom` tag, with the image as its OCI subject. */
async function pushSboms(pipeline: Pipeline, repository: Repository, images: Image[], sboms: Buffer[], events: EventBus, signal?: AbortSignal): Promise<string[]> {
  return Promise.all(
    images.map(async (image, i) => {
      const artifact = fileArtifact({
        mediaType: SPDX_JSON,
        data: sboms[i] as Buffer,
        subject: { mediaType: image.manifestMediaType, digest: image.manifestDigest, size: image.manifestBytes.length },
      });
      const published = await pipeline.publisher.publishArtifact(artifact, repository, attachmentTag(image.manifestDigest, 'sbom'), signal, events);
      events.emit({ type: 'log', level: 'info', message: `Published SBOM ${published.reference}` });
      return published.reference;
    }),
  );
}
