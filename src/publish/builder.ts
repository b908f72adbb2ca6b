// The Builder seam (ko's build.Interface): a Go main package and a platform in, an image value
// out. The go builder implements it; decorators add limiting (--jobs) and caching (one build per
// import path and platform in a command) on the same interface; `fixedBuilder` stands in for it
// in tests. Nothing here pushes: images are values until a Publisher writes them somewhere.
import { isAbsolute } from 'node:path';
import type { ImageOptions } from '../config/build-options.js';
import type { ResolvedBuild } from '../config/resolve.js';
import type { EventBus } from '../events.js';
import type { GoPackage } from '../go/list.js';
import type { BaseImage, Image, Platform, RunnableImage } from '../image/types.js';

export type { ImageOptions };

/** A spec (import path, `ko://` path or ./dir) resolved to its main package and build settings. */
export interface ResolvedTarget {
  pkg: GoPackage;
  /** Where go runs for this package. */
  cwd: string;
  build: ResolvedBuild | undefined;
}

export interface BuiltImage {
  importPath: string;
  appName: string;
  platform: Platform;
  image: Image;
  base: BaseImage;
  binaryPath: string;
  /** The Go build ID of the binary (undefined for non-ELF output). */
  buildId: string | undefined;
}

/** A new binary, built and not yet packed into its layer: what a revision needs to run it. */
export interface BuiltBinary {
  runnable: RunnableImage;
  /** Its Go build ID (only a binary that has one is offered early). */
  buildId: string;
}

/** What one build call runs with: its events (with service and iteration set) and its signal. */
export interface BuildContext {
  events: EventBus;
  signal?: AbortSignal;
  /**
   * Called once a new binary is built, before its layer is tarred and hashed (a revision can start
   * from it meanwhile: the local target). The layer is packed once what it returns has settled, so
   * the revision's start does not share the machine with the packing. Not called for a binary whose
   * layer is reused, nor by a builder that keeps layers in memory.
   */
  onBinary?: (binary: BuiltBinary) => Promise<unknown> | undefined;
}

export interface Builder {
  /** ko's QualifyImport: what a spec names; throws unless it is one main package. */
  resolve(spec: string, signal?: AbortSignal): Promise<ResolvedTarget>;
  /** The image of one main package for one platform; emits the `build` and `layer` stages. */
  build(target: ResolvedTarget, platform: Platform, context: BuildContext): Promise<BuiltImage>;
}

export function isLocalPath(spec: string): boolean {
  return spec === '.' || spec === '..' || spec.startsWith('./') || spec.startsWith('../') || isAbsolute(spec);
}
