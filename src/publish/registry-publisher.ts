// The registry publisher (ko's default publisher): names a built result's repository from
// KO_DOCKER_REPO, the naming mode and the import path, pushes it under the tags (an index after
// its children), and answers the reference ko prints. `noPushPublisher` (--push=false) answers
// `name:tag@digest` without touching a registry.
import { TskoError } from '../errors.js';
import { parseRepository, type Repository } from '../registry/reference.js';
import type { BuildResult } from './platforms.js';
import { imageNameFor, NOTHING_PUSHED, type ImageNaming, type Published, type PublishedChild, type Publisher } from './publisher.js';
import type { RegistryWriter } from './registry-writer.js';

/** The repository images of `importPath` go to; a KO_DOCKER_REPO that makes no valid name fails here. */
export function imageRepository(naming: ImageNaming, importPath: string): Repository {
  const name = imageNameFor(naming, importPath);
  try {
    return parseRepository(name);
  } catch (err) {
    throw new TskoError('KO_DOCKER_REPO', `KO_DOCKER_REPO="${naming.dockerRepo}" gives an invalid image name "${name}"`, {
      cause: err,
      hint: 'KO_DOCKER_REPO is a registry and repository prefix such as 127.0.0.1:5000/team or gcr.io/my-project',
    });
  }
}

export function registryPublisher(writer: RegistryWriter, naming: ImageNaming): Publisher {
  return {
    async publish(result, context) {
      const repository = imageRepository(naming, result.importPath);
      if (result.index) {
        const written = await writer.writeIndex(result.index, repository, naming.tags, context);
        return { importPath: result.importPath, reference: written.reference, digest: written.digest, children: childrenOf(imageNameFor(naming, result.importPath), result), sboms: [], stats: statsOf(written.stats) };
      }
      const image = result.images[0];
      if (!image) throw new TskoError('INTERNAL', `nothing was built for ${result.importPath}`);
      const written = await writer.writeImage(image.image, repository, naming.tags, context);
      return { importPath: result.importPath, reference: written.reference, digest: written.digest, sboms: [], stats: statsOf(written.stats) };
    },
  };
}

/** --push=false: the reference a push would give under the first tag, nothing written. */
export function noPushPublisher(naming: ImageNaming): Publisher {
  return {
    publish(result) {
      const name = imageNameFor(naming, result.importPath);
      const children = result.index ? childrenOf(name, result) : undefined;
      return Promise.resolve({
        importPath: result.importPath,
        reference: `${name}:${naming.tags[0] ?? 'latest'}@${result.digest}`,
        digest: result.digest,
        ...(children ? { children } : {}),
        sboms: [],
        stats: { ...NOTHING_PUSHED },
      });
    },
  };
}

function childrenOf(name: string, result: BuildResult): PublishedChild[] {
  return result.images.map((b) => ({ platform: b.platform, digest: b.image.manifestDigest, reference: `${name}@${b.image.manifestDigest}` }));
}

function statsOf(stats: { blobsPushed: number; blobsSkipped: number; bytesPushed: number }): Published['stats'] {
  return { blobsPushed: stats.blobsPushed, blobsSkipped: stats.blobsSkipped, bytesPushed: stats.bytesPushed };
}
