// One import path → one published reference: build (for each platform), then push to the
// registry and/or write an OCI layout or tarball. Shared by `tsko build`, `resolve` and `dev`.
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { formatPlatform } from '../go/platform.js';
import { writeOciLayout, type LayerBytes } from '../image/layout.js';
import { writeTarball } from '../image/tarball.js';
import type { Layer, Platform } from '../image/types.js';
import { parseRepository, type Repository } from '../registry/reference.js';
import type { BuiltImage } from './builder.js';
import { imageName, type NamingMode } from './naming.js';
import type { Pipeline } from './pipeline.js';

export interface PublishRequest {
  /** KO_DOCKER_REPO (or the embedded registry's address). */
  dockerRepo: string;
  naming: NamingMode;
  tags: string[];
  platforms: Platform[];
  push: boolean;
  ociLayoutPath?: string;
  tarball?: string;
}

export interface PublishResult {
  importPath: string;
  /** The line printed on stdout. */
  reference: string;
  digest: string;
  built: BuiltImage[];
  blobsPushed: number;
  blobsSkipped: number;
  bytesPushed: number;
}

export async function buildAndPublish(pipeline: Pipeline, target: string, request: PublishRequest, events: EventBus, signal?: AbortSignal): Promise<PublishResult> {
  if (request.platforms.length !== 1) {
    throw new TskoError('PLATFORM', `building ${request.platforms.length} platforms at once is not supported yet; pass one --platform`);
  }
  const platform = request.platforms[0] as Platform;
  const resolved = await pipeline.builder.resolveTarget(target, signal);
  const built = await pipeline.builder.build(resolved, platform, signal);
  const image = built.image;
  const name = imageName(request.dockerRepo, built.importPath, request.naming);
  let repository: Repository;
  try {
    repository = parseRepository(name);
  } catch (err) {
    throw new TskoError('KO_DOCKER_REPO', `KO_DOCKER_REPO="${request.dockerRepo}" gives an invalid image name "${name}"`, {
      cause: err,
      hint: 'KO_DOCKER_REPO is a registry and repository prefix such as 127.0.0.1:5000/team or gcr.io/my-project',
    });
  }
  const layerBytes: LayerBytes = (layer: Layer) =>
    layer.source.kind === 'memory'
      ? Promise.resolve(layer.source.data)
      : pipeline.client.getBlob({ registry: layer.source.registry, repository: layer.source.repository }, layer.digest, signal);

  if (request.ociLayoutPath) {
    await writeOciLayout(request.ociLayoutPath, image, { tag: request.tags[0] ?? 'latest', layerBytes });
    events.emit({ type: 'log', level: 'info', message: `Wrote ${built.importPath} (${formatPlatform(platform)}) to OCI layout ${request.ociLayoutPath}` });
  }
  if (request.tarball) {
    const repoTags = request.tags.map((tag) => `${name}:${tag}`);
    await writeTarball(request.tarball, image, { repoTags, layerBytes });
    events.emit({ type: 'log', level: 'info', message: `Wrote ${built.importPath} to tarball ${request.tarball}` });
  }

  if (!request.push) {
    const tag = request.tags[0] ?? 'latest';
    return {
      importPath: built.importPath,
      reference: `${name}:${tag}@${image.manifestDigest}`,
      digest: image.manifestDigest,
      built: [built],
      blobsPushed: 0,
      blobsSkipped: 0,
      bytesPushed: 0,
    };
  }

  events.emit({ type: 'stage.start', stage: 'push', importPath: built.importPath });
  const started = performance.now();
  let ok = false;
  try {
    const published = await pipeline.publisher.publish(image, repository, request.tags, signal);
    ok = true;
    const { blobsPushed, blobsSkipped, bytesPushed } = published.stats;
    events.emit({ type: 'published', importPath: built.importPath, reference: published.reference, blobsPushed, blobsSkipped, bytesPushed });
    return { importPath: built.importPath, reference: published.reference, digest: published.digest, built: [built], blobsPushed, blobsSkipped, bytesPushed };
  } finally {
    events.emit({ type: 'stage.end', stage: 'push', importPath: built.importPath, ms: performance.now() - started, ok });
  }
}
