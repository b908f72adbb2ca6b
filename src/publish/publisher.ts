// The Publisher seam (ko's publish.Interface): a built result in, a reference out. The registry
// publisher pushes; the OCI layout and tarball publishers write files; `noPushPublisher` only
// names what a push would give. Decorators add the rest on the same interface — several sinks at
// once, SBOMs, one publish per result (caching), a record of what was published (--image-refs),
// the `push` stage and registry retention — and `makePipeline` wires them in one place.
import type { EventBus } from '../events.js';
import type { Platform } from '../image/types.js';
import { imageName, type NamingMode } from './naming.js';
import type { BuildResult } from './platforms.js';

export interface PublishContext {
  events: EventBus;
  signal?: AbortSignal | undefined;
}

export interface PublishStats {
  blobsPushed: number;
  blobsSkipped: number;
  bytesPushed: number;
}

export interface PublishedChild {
  platform: Platform;
  digest: string;
  /** name@sha256:… of this platform's image. */
  reference: string;
}

export interface Published {
  importPath: string;
  /** What ko prints on stdout: name@sha256:…, name:tag@sha256:…, or name:tag@sha256:… unpushed. */
  reference: string;
  digest: string;
  /** Each platform's image when the result is an index, in the index's order (ko #555). */
  children?: PublishedChild[];
  /** References of the SBOMs pushed beside it, one per image. */
  sboms: string[];
  stats: PublishStats;
}

export interface Publisher {
  publish(result: BuildResult, context: PublishContext): Promise<Published>;
}

/** Where images of an import path are named: KO_DOCKER_REPO (or the embedded registry), the naming mode and the tags. */
export interface ImageNaming {
  dockerRepo: string;
  naming: NamingMode;
  /** Deduplicated; the first gets the push, the others are extra manifest PUTs. */
  tags: readonly string[];
}

/** The image name (without tag or digest) `naming` gives an import path. */
export function imageNameFor(naming: ImageNaming, importPath: string): string {
  return imageName(naming.dockerRepo, importPath, naming.naming);
}

export const NOTHING_PUSHED: PublishStats = Object.freeze({ blobsPushed: 0, blobsSkipped: 0, bytesPushed: 0 });
