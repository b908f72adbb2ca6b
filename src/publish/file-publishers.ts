// Publishers that write files instead of pushing (ko's layout and tarball publishers): an OCI
// image layout directory (--oci-layout-path; a multi-platform result as its index) and a
// `docker load` tarball (--tarball; one platform only, as in ko). Each reports a log line.
import { TskoError } from '../errors.js';
import { formatPlatform } from '../go/platform.js';
import { writeOciLayout, writeOciLayoutIndex } from '../image/layout.js';
import { writeTarball } from '../image/tarball.js';
import { imageNameFor, NOTHING_PUSHED, type ImageNaming, type Published, type Publisher } from './publisher.js';
import type { BuildResult } from './platforms.js';

export function layoutPublisher(dir: string, tag: string): Publisher {
  return {
    async publish(result, { events, signal }) {
      if (result.index) await writeOciLayoutIndex(dir, result.index, { tag, ...(signal ? { signal } : {}) });
      else await writeOciLayout(dir, onlyImage(result), { tag, ...(signal ? { signal } : {}) });
      events.emit({ type: 'log', level: 'info', message: `Wrote ${result.importPath} (${platformsOf(result)}) to OCI layout ${dir}` });
      return fileResult(result, `${dir}@${result.digest}`);
    },
  };
}

export function tarballPublisher(file: string, naming: ImageNaming): Publisher {
  return {
    async publish(result, { events, signal }) {
      if (result.index) throw tarballPlatformsError(result.importPath, platformsOf(result));
      const name = imageNameFor(naming, result.importPath);
      await writeTarball(file, onlyImage(result), { repoTags: naming.tags.map((tag) => `${name}:${tag}`), ...(signal ? { signal } : {}) });
      events.emit({ type: 'log', level: 'info', message: `Wrote ${result.importPath} to tarball ${file}` });
      return fileResult(result, `${file}@${result.digest}`);
    },
  };
}

/** A docker tarball holds one image, as in ko. */
export function tarballPlatformsError(importPath: string, platforms: string): TskoError {
  return new TskoError('USAGE', `--tarball can hold only one platform, but ${importPath} builds ${platforms}`, {
    hint: 'pass a single --platform, or use --oci-layout-path for a multi-platform image',
  });
}

function onlyImage(result: BuildResult) {
  const first = result.images[0];
  if (!first) throw new TskoError('INTERNAL', `nothing was built for ${result.importPath}`);
  return first.image;
}

function platformsOf(result: BuildResult): string {
  return result.images.map((b) => formatPlatform(b.platform)).join(', ');
}

function fileResult(result: BuildResult, reference: string): Published {
  return { importPath: result.importPath, reference, digest: result.digest, sboms: [], stats: { ...NOTHING_PUSHED } };
}
