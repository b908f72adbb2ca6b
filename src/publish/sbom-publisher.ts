// The SBOM decorator: every image a publish writes gets its SPDX SBOM (from the binary's
// `go version -m`), written into --sbom-dir when asked and, when pushing, pushed next to the image
// as an OCI 1.1 artifact under ko's `sha256-<hex>.sbom` tag with the image as its subject.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readBuildInfo } from '../go/buildinfo.js';
import { formatPlatform } from '../go/platform.js';
import type { GoRunOptions } from '../go/toolchain.js';
import { attachmentTag, fileArtifact } from '../image/artifact.js';
import { SPDX_JSON } from '../image/media-types.js';
import type { BuiltImage } from './builder.js';
import { imageNameFor, type ImageNaming, type PublishContext, type Publisher } from './publisher.js';
import { imageRepository } from './registry-publisher.js';
import type { RegistryWriter } from './registry-writer.js';
import { sbomFileName, spdxBytes, spdxDocument } from './sbom.js';

const TOOL = 'tsko 0.1.0';

export interface SbomOptions {
  naming: ImageNaming;
  /** How `go version -m` runs (the config's go binary, env and directory). */
  go: Omit<GoRunOptions, 'signal'>;
  /** Also write each SBOM here as `<app>-<os>-<arch>.spdx.json`. */
  dir?: string;
  /** Push each SBOM beside its image through this writer. */
  push?: RegistryWriter;
}

export function withSboms(inner: Publisher, options: SbomOptions): Publisher {
  return {
    async publish(result, context) {
      const name = imageNameFor(options.naming, result.importPath);
      const sboms = await Promise.all(result.images.map((built) => makeSbom(built, name, options.go, context.signal)));
      if (options.dir) await writeSboms(options.dir, result.images, sboms, context);
      const published = await inner.publish(result, context);
      if (!options.push) return published;
      const writer = options.push;
      const repository = imageRepository(options.naming, result.importPath);
      const references = await Promise.all(
        result.images.map(async ({ image }, i) => {
          const artifact = fileArtifact({
            mediaType: SPDX_JSON,
            data: sboms[i] as Buffer,
            subject: { mediaType: image.manifestMediaType, digest: image.manifestDigest, size: image.manifestBytes.length },
          });
          const written = await writer.writeArtifact(artifact, repository, attachmentTag(image.manifestDigest, 'sbom'), context);
          context.events.emit({ type: 'log', level: 'info', message: `Published SBOM ${written.reference}` });
          return written.reference;
        }),
      );
      return { ...published, sboms: references };
    },
  };
}

async function makeSbom(built: BuiltImage, name: string, go: SbomOptions['go'], signal: AbortSignal | undefined): Promise<Buffer> {
  const info = await readBuildInfo(built.binaryPath, { ...go, env: { ...go.env }, ...(signal ? { signal } : {}) });
  const { image } = built;
  const document = spdxDocument(info, { digest: image.manifestDigest, platform: built.platform, repository: name }, { created: image.config.created ?? '1970-01-01T00:00:00Z', tool: TOOL });
  return spdxBytes(document);
}

async function writeSboms(dir: string, images: readonly BuiltImage[], sboms: readonly Buffer[], { events }: PublishContext): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [i, built] of images.entries()) {
    const file = join(dir, sbomFileName(built.appName, built.platform));
    await writeFile(file, sboms[i] as Buffer);
    events.emit({ type: 'log', level: 'info', message: `Wrote SBOM of ${built.importPath} (${formatPlatform(built.platform)}) to ${file}` });
  }
}
