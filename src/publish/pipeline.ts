// Wires one resolved config into what a command runs — one registry client (one token handshake
// per repo, one keep-alive pool per registry), one base resolver, the Builder and the Publisher
// with their decorators — in one place, as ko's resolver.go does. `tsko dev` keeps one for as
// long as its config stays the same, and makes a new one when the config changes.
import { join } from 'node:path';
import type { ResolvedConfig } from '../config/resolve.js';
import type { EventBus } from '../events.js';
import { formatPlatform } from '../go/platform.js';
import { LayerFiles } from '../image/layer-files.js';
import type { Platform } from '../image/types.js';
import { RegistryClient } from '../registry/client.js';
import type { Repository } from '../registry/reference.js';
import { BaseResolver } from './base.js';
import { BlobLocations } from './blob-locations.js';
import { cacheBuilds, limitBuilds } from './build-decorators.js';
import type { Builder, BuildContext, ResolvedTarget } from './builder.js';
import { layoutPublisher, tarballPlatformsError, tarballPublisher } from './file-publishers.js';
import { baseImageFor, GoBuilder } from './go-builder.js';
import { createLimiter } from './limiter.js';
import { buildForPlatforms, platformsToBuild, type BuildResult } from './platforms.js';
import { cachePublishes, multiPublisher, recordPublishes, retainAfterPush, stagePushes, type RecordingPublisher } from './publish-decorators.js';
import type { ImageNaming, Published, PublishContext, Publisher } from './publisher.js';
import { noPushPublisher, registryPublisher } from './registry-publisher.js';
import { RegistryWriter, type InProcessRegistry } from './registry-writer.js';
import { withSboms } from './sbom-publisher.js';
import { StreamedUploads } from './streamed-uploads.js';
import { imageRepository } from './registry-publisher.js';

export interface PipelineOptions {
  /** Where the registry client reports retries, warnings and (with -v) requests. */
  events: EventBus;
  /** KO_DOCKER_REPO, or the embedded registry's address (with its `/path` if any). */
  dockerRepo: string;
  /** After each push to a repository (the embedded registry's retention in `tsko dev`). */
  retain?: (repository: Repository) => Promise<unknown>;
  /** The embedded registry, when this process serves it: layer files are handed to it, not uploaded. */
  inProcess?: InProcessRegistry | undefined;
}

export interface Pipeline {
  readonly config: ResolvedConfig;
  readonly client: RegistryClient;
  readonly builder: Builder;
  /** Every sink the config asks for, with SBOMs, the push stage and retention. */
  readonly publisher: Publisher;
  /** With --image-refs: what was published so far, each result once, in the order the publishes finished. */
  readonly published: readonly Published[];
  /**
   * The sources of an import path changed: its next build runs again and its next publish pushes
   * again (ko's Caching.Invalidate, called by the dev loop on every save).
   */
  invalidate(importPath: string): void;
  /** ko's QualifyImport: a spec to its main package (throws unless it is one). */
  resolve(spec: string, signal?: AbortSignal): Promise<ResolvedTarget>;
  /** Builds a resolved package for `platforms` (default: the config's) into a result a publisher takes. */
  build(target: ResolvedTarget, context: BuildContext, platforms?: readonly Platform[]): Promise<BuildResult>;
  /** A spec resolved, built and published: what `tsko build`, `resolve` and `run` do per import path. */
  publish(spec: string | ResolvedTarget, context: PublishContext): Promise<Published>;
  close(): Promise<void>;
}

export function makePipeline(config: ResolvedConfig, options: PipelineOptions): Pipeline {
  const { build } = config;
  const client = new RegistryClient({
    insecureRegistries: build.insecureRegistry ? true : [...config.registry.insecure],
    caCertificates: [...config.registry.caCertificates],
    env: config.env,
    homedir: config.homedir,
    events: options.events,
    userAgent: 'tsko/0.1',
  });
  const bases = new BaseResolver({ client, cacheDir: join(config.cacheDir, 'base') });
  // App layers go to files, not memory: a daemon's memory stays flat whatever the binary's size.
  const layerFiles = new LayerFiles(join(config.cacheDir, 'layer-files'));
  const naming: ImageNaming = { dockerRepo: options.dockerRepo, naming: build.naming, tags: build.tags };
  // With a push, a new binary layer goes to its registry while it is compressed (unless the
  // registry is this process's own, which takes the file by path).
  const streamed = build.push
    ? new StreamedUploads({ client, repositoryFor: (importPath) => imageRepository(naming, importPath), inProcessAddress: options.inProcess?.address })
    : undefined;
  const goBuilder = new GoBuilder({
    config,
    bases,
    image: build.image,
    layerFiles,
    ...(streamed ? { streamLayer: (importPath: string, platform: string, signal?: AbortSignal) => streamed.tap(importPath, platform, signal) } : {}),
    // The registry client's HTTP stack loads while go builds, not after it (~50 ms of start-up).
    ...(build.push ? { whileBuilding: () => client.warm() } : {}),
  });
  // --jobs bounds the go builds of the whole command, every import path and platform together;
  // an import path named several times is built once (the dev loop invalidates it on each save).
  const builder = cacheBuilds(limitBuilds(goBuilder, createLimiter(build.jobs)));

  const writer = new RegistryWriter({
    client,
    locations: new BlobLocations(join(config.cacheDir, 'blob-locations')),
    ...(options.inProcess ? { inProcess: options.inProcess } : {}),
    ...(streamed ? { streamed } : {}),
  });
  const pushing = registryPublisher(writer, naming);
  let primary: Publisher = build.push ? pushing : noPushPublisher(naming);
  const pushSboms = build.push && build.sbom === 'spdx';
  if (pushSboms || build.sbomDir) {
    primary = withSboms(primary, {
      naming,
      go: { goBinary: config.goBinary, cwd: config.cwd, env: { ...config.env } },
      ...(build.sbomDir ? { dir: build.sbomDir } : {}),
      ...(pushSboms ? { push: writer } : {}),
    });
  }
  if (build.push && options.retain) primary = retainAfterPush(primary, naming, options.retain);
  if (build.push) primary = stagePushes(primary);
  const files: Publisher[] = [
    ...(build.ociLayoutPath ? [layoutPublisher(build.ociLayoutPath, build.tags[0] ?? 'latest')] : []),
    ...(build.tarball ? [tarballPublisher(build.tarball, naming)] : []),
  ];
  // Under the cache, so each result is recorded once; only with --image-refs, so a dev session's
  // saves are not kept forever.
  const sinks = multiPublisher(primary, files);
  const recorder: RecordingPublisher | undefined = build.imageRefs ? recordPublishes(sinks) : undefined;
  const caching = cachePublishes(recorder ?? sinks);

  const pipeline: Pipeline = {
    config,
    client,
    builder,
    publisher: caching,
    get published() {
      return recorder?.records ?? [];
    },
    invalidate(importPath) {
      builder.invalidate(importPath);
      caching.invalidate(importPath);
    },
    resolve: (spec, signal) => builder.resolve(spec, signal),
    async build(target, context, platforms) {
      const wanted = platforms ?? (await platformsToBuild(bases, baseImageFor(config, target.pkg.importPath), build.platforms, context.signal));
      // Before building: a tarball cannot hold what several platforms would make.
      if (wanted.length > 1 && build.tarball) throw tarballPlatformsError(target.pkg.importPath, wanted.map(formatPlatform).join(', '));
      return buildForPlatforms(builder, target, wanted, context, build.image.annotations ? { annotations: build.image.annotations } : {});
    },
    async publish(spec, context) {
      const target = typeof spec === 'string' ? await builder.resolve(spec, context.signal) : spec;
      return caching.publish(await pipeline.build(target, context), context);
    },
    close: async () => {
      await Promise.all([streamed?.close(), goBuilder.flush()]);
      await Promise.all([client.close(), layerFiles.close()]);
    },
  };
  return pipeline;
}
