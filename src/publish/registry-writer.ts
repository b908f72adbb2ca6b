// Writes image values into a registry (ggcr's remote.Write): an image, an index, an artifact. It
// pushes only what the registry lacks: a HEAD on the tag first (same digest → nothing to do),
// then per blob: remembered as present, HEAD, cross-repo mount for base layers in the same
// registry (or wherever this registry was seen to hold the blob), else an upload of the bytes the
// layer opens (a base layer from another registry is thus copied once; a layer file is streamed
// from disk), or, for the embedded registry this same process serves, the layer file handed over
// by path. A new binary layer may have been streamed while it was written (streamed-uploads.ts):
// where this would upload it, it only closes that session, and falls back to the file if the
// stream failed. Blobs go before the manifest, so no tag ever points at an incomplete image.
import type { Readable } from 'node:stream';
import { TskoError, isAbortError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Artifact } from '../image/artifact.js';
import type { ImageIndex } from '../image/index.js';
import type { Digest } from '../image/digest.js';
import { memoryLayer, readLayer } from '../image/layer.js';
import type { BlobOrigin, Image } from '../image/types.js';
import type { RegistryClient } from '../registry/client.js';
import { formatReference, type Reference, type Repository } from '../registry/reference.js';
import { BlobLocations } from './blob-locations.js';
import type { PublishStats } from './publisher.js';
import type { PendingStream, StreamedUploads } from './streamed-uploads.js';

/** Where a write reports (events with the iteration's fields) and what cancels it. */
export interface WriteContext {
  events: EventBus;
  signal?: AbortSignal | undefined;
}

/** What a write cost, and whether the manifest was there already (then nothing else was sent). */
export interface WriteStats extends PublishStats {
  manifestExisted: boolean;
}

/** What was written: where, under which digest, and what it cost. */
export interface Written {
  repository: Repository;
  digest: string;
  /** What ko prints: name@sha256:…, or name:tag@sha256:… when the only tag is not latest. */
  reference: string;
  stats: WriteStats;
}

export interface WrittenIndex extends Written {
  /** Each platform's image, pushed by digest before the index, in the index's order. */
  children: Written[];
}

/** Manifest bytes as they go to the registry (an image, an index or an artifact). */
interface ManifestToPut {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** A registry this very process serves: a blob already in a file is handed over, not sent over HTTP. */
export interface InProcessRegistry {
  /** `host:port`, as repositories name it. */
  readonly address: string;
  adoptBlob(repository: string, digest: string, source: { path: string; size: number } | { bytes: Uint8Array }): Promise<'stored' | 'existing'>;
}

export interface RegistryWriterOptions {
  client: RegistryClient;
  inProcess?: InProcessRegistry;
  /** Parallel blob uploads per image (ggcr's default is 4). */
  concurrency?: number;
  /** Where blobs were put before, for cross-repo mounts; default: this process only. */
  locations?: BlobLocations;
  /** Layers already streaming to their registry while they were written (the remote path). */
  streamed?: StreamedUploads;
}

/** A blob to push: a layer, or a config or artifact file from memory. */
interface BlobToPush {
  digest: string;
  size: number;
  origin?: BlobOrigin;
  /** The file holding the bytes, for a layer tsko wrote. */
  path?: string;
  /** The bytes themselves, for a config or artifact file. */
  bytes?: Buffer;
  open(signal?: AbortSignal): Promise<Readable>;
}

export class RegistryWriter {
  private readonly client: RegistryClient;
  private readonly inProcess: InProcessRegistry | undefined;
  private readonly concurrency: number;
  private readonly locations: BlobLocations;
  private readonly streamed: StreamedUploads | undefined;
  /** Blobs known to be in a repository, so a warm push HEADs nothing it has seen. */
  private readonly known = new Set<string>();
  /** One in-flight push per blob and repository, shared by concurrent publishes. */
  private readonly inflight = new Map<string, Promise<'pushed' | 'skipped'>>();

  constructor(options: RegistryWriterOptions) {
    this.client = options.client;
    this.inProcess = options.inProcess;
    this.concurrency = options.concurrency ?? 4;
    this.locations = options.locations ?? new BlobLocations();
    this.streamed = options.streamed;
  }

  async writeImage(image: Image, repository: Repository, tags: readonly string[], { events, signal }: WriteContext): Promise<Written> {
    const stats: WriteStats = { blobsPushed: 0, blobsSkipped: 0, bytesPushed: 0, manifestExisted: false };
    const name = formatReference(repository);
    const firstTag = tags[0];
    const target: Reference = firstTag ? { ...repository, tag: firstTag } : { ...repository, digest: image.manifestDigest };

    const existing = await this.client.headManifest(target, signal);
    if (existing?.digest === image.manifestDigest) {
      stats.manifestExisted = true;
      stats.blobsSkipped = image.layers.length + 1;
      events.emit({ type: 'manifest', action: 'existing', reference: formatReference(target), digest: image.manifestDigest, size: image.manifestBytes.length });
    } else {
      const blobs: BlobToPush[] = [...image.layers, fileBlob(image.configDigest, image.configBytes)];
      await runLimited(blobs, this.concurrency, async (blob) => {
        const outcome = await this.pushBlob(repository, blob, signal, events);
        if (outcome === 'pushed') {
          stats.blobsPushed += 1;
          stats.bytesPushed += blob.size;
        } else {
          stats.blobsSkipped += 1;
        }
      });
      await this.putManifest(target, imageManifest(image), signal, events);
    }
    // Extra tags only move once the image is complete under the first.
    await Promise.all(tags.slice(1).map((tag) => this.putManifest({ ...repository, tag }, imageManifest(image), signal, events)));

    return { repository, digest: image.manifestDigest, reference: printedReference(name, tags, image.manifestDigest), stats };
  }

  /**
   * A multi-platform image: every child by digest (blobs first, in parallel), then the index under
   * the first tag, then the other tags — so a tag never names an index whose children are missing.
   * A HEAD on the first tag that already answers the index's digest skips everything.
   */
  async writeIndex(index: ImageIndex, repository: Repository, tags: readonly string[], context: WriteContext): Promise<WrittenIndex> {
    const { events, signal } = context;
    const name = formatReference(repository);
    const firstTag = tags[0];
    const target: Reference = firstTag ? { ...repository, tag: firstTag } : { ...repository, digest: index.digest };
    const manifest: ManifestToPut = { bytes: index.bytes, mediaType: index.mediaType, digest: index.digest };
    const stats: WriteStats = { blobsPushed: 0, blobsSkipped: 0, bytesPushed: 0, manifestExisted: false };
    let children: Written[];

    const existing = await this.client.headManifest(target, signal);
    if (existing?.digest === index.digest) {
      stats.manifestExisted = true;
      stats.blobsSkipped = index.children.length;
      events.emit({ type: 'manifest', action: 'existing', reference: formatReference(target), digest: index.digest, size: index.bytes.length });
      children = index.children.map((child) => ({
        repository,
        digest: child.manifestDigest,
        reference: `${name}@${child.manifestDigest}`,
        stats: { blobsPushed: 0, blobsSkipped: child.layers.length + 1, bytesPushed: 0, manifestExisted: true },
      }));
    } else {
      children = await Promise.all(index.children.map((child) => this.writeImage(child, repository, [], context)));
      for (const child of children) {
        stats.blobsPushed += child.stats.blobsPushed;
        stats.blobsSkipped += child.stats.blobsSkipped;
        stats.bytesPushed += child.stats.bytesPushed;
      }
      await this.putManifest(target, manifest, signal, events);
    }
    await Promise.all(tags.slice(1).map((tag) => this.putManifest({ ...repository, tag }, manifest, signal, events)));
    return { repository, digest: index.digest, reference: printedReference(name, tags, index.digest), stats, children };
  }

  /**
   * An artifact (an SBOM) under a tag: its blobs, then its manifest. The manifest names its
   * subject, so a registry with the referrers API also lists it there; the tag is the fallback
   * every registry understands.
   */
  async writeArtifact(artifact: Artifact, repository: Repository, tag: string, { events, signal }: WriteContext): Promise<Written> {
    const stats: WriteStats = { blobsPushed: 0, blobsSkipped: 0, bytesPushed: 0, manifestExisted: false };
    const target: Reference = { ...repository, tag };
    const existing = await this.client.headManifest(target, signal);
    if (existing?.digest === artifact.digest) {
      stats.manifestExisted = true;
      stats.blobsSkipped = artifact.blobs.length;
      events.emit({ type: 'manifest', action: 'existing', reference: formatReference(target), digest: artifact.digest, size: artifact.bytes.length });
    } else {
      for (const blob of artifact.blobs) {
        const outcome = await this.pushBlob(repository, fileBlob(blob.digest, blob.data), signal, events);
        if (outcome === 'pushed') {
          stats.blobsPushed += 1;
          stats.bytesPushed += blob.data.length;
        } else {
          stats.blobsSkipped += 1;
        }
      }
      await this.putManifest(target, { bytes: artifact.bytes, mediaType: artifact.mediaType, digest: artifact.digest }, signal, events);
    }
    return { repository, digest: artifact.digest, reference: `${formatReference(target)}@${artifact.digest}`, stats };
  }

  private async putManifest(ref: Reference, manifest: ManifestToPut, signal: AbortSignal | undefined, events: EventBus): Promise<void> {
    const digest = await this.client.putManifest(ref, manifest.bytes, manifest.mediaType, signal);
    if (digest !== manifest.digest) {
      throw new TskoError('REGISTRY_DIGEST', `${formatReference(ref)}: registry stored manifest ${digest}, expected ${manifest.digest}`);
    }
    events.emit({ type: 'manifest', action: 'pushed', reference: formatReference(ref), digest, size: manifest.bytes.length });
  }

  private pushBlob(repository: Repository, blob: BlobToPush, signal: AbortSignal | undefined, events: EventBus): Promise<'pushed' | 'skipped'> {
    const key = `${repository.registry}/${repository.repository}@${blob.digest}`;
    // A stream of this blob (taken once): completed only if this push would upload, else cancelled.
    const stream = this.streamed?.take(repository, blob.digest);
    if (this.known.has(key)) {
      void stream?.cancel();
      emitBlob(events, 'known', repository, blob);
      return Promise.resolve('skipped');
    }
    let pending = this.inflight.get(key);
    if (pending) void stream?.cancel();
    if (!pending) {
      pending = this.pushBlobOnce(repository, blob, signal, events, stream).then(
        async (outcome) => {
          this.known.add(key);
          await this.locations.remember(repository.registry, repository.repository, blob.digest);
          this.inflight.delete(key);
          return outcome;
        },
        (err: unknown) => {
          this.inflight.delete(key);
          throw err;
        },
      );
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async pushBlobOnce(repository: Repository, blob: BlobToPush, signal: AbortSignal | undefined, events: EventBus, stream?: PendingStream): Promise<'pushed' | 'skipped'> {
    let uploading = false;
    try {
      return await this.pushBlobChecked(repository, blob, signal, events, stream, () => (uploading = true));
    } finally {
      // Any way out but the upload (found, mounted, failed, aborted) leaves nothing behind.
      if (stream && !uploading) void stream.cancel();
    }
  }

  private async pushBlobChecked(
    repository: Repository,
    blob: BlobToPush,
    signal: AbortSignal | undefined,
    events: EventBus,
    stream: PendingStream | undefined,
    willUpload: () => void,
  ): Promise<'pushed' | 'skipped'> {
    const local = blob.path !== undefined ? { path: blob.path, size: blob.size } : blob.bytes ? { bytes: blob.bytes } : undefined;
    if (local && this.inProcess?.address === repository.registry) {
      const outcome = await this.inProcess.adoptBlob(repository.repository, blob.digest, local);
      emitBlob(events, outcome === 'existing' ? 'existing' : 'pushed', repository, blob);
      return outcome === 'existing' ? 'skipped' : 'pushed';
    }
    if (await this.client.headBlob(repository, blob.digest, signal)) {
      emitBlob(events, 'existing', repository, blob);
      return 'skipped';
    }
    // Anything this registry already holds elsewhere is mounted, never sent again.
    const sources = await this.locations.find(repository.registry, blob.digest);
    if (blob.origin?.registry === repository.registry) sources.unshift(blob.origin.repository);
    for (const fromRepository of new Set(sources)) {
      if (fromRepository === repository.repository) continue;
      const from: Repository = { registry: repository.registry, repository: fromRepository };
      if (await this.client.mountBlob(repository, blob.digest, from, signal).catch(mountRefused)) {
        emitBlob(events, 'mounted', repository, blob);
        return 'skipped';
      }
    }
    willUpload();
    if (stream && (await stream.complete())) {
      // Sent while the layer was written; only the closing PUT was left.
      emitBlob(events, 'pushed', repository, blob);
      return 'pushed';
    }
    if (stream) {
      // The stream failed (refused, reset, a lost session): the upload from the file below is its
      // retry, and every retry is an event.
      events.emit({ type: 'retry', operation: `streamed upload of ${blob.digest}`, attempt: 1, cause: stream.failureCause ?? 'STREAM_FAILED', delayMs: 0 });
    }
    if (blob.path) {
      // A file on disk (also when its stream failed): streamed, and opened again by a retried upload.
      await this.client.uploadBlob(repository, blob.digest, blob.size, () => blob.open(signal), signal);
    } else {
      // Read whole once: a retried upload sends these bytes again instead of fetching them again.
      const data = await readLayer(blob, signal);
      await this.client.uploadBlob(repository, blob.digest, data.length, () => data, signal);
    }
    // A layer from another registry (or one whose mount was refused) is a copy; later pushes mount it.
    emitBlob(events, blob.origin ? 'copied' : 'pushed', repository, blob);
    return 'pushed';
  }

  /** Forget what is known to be in registries (e.g. after the registry was garbage-collected). */
  forgetKnownBlobs(): void {
    this.known.clear();
  }
}

/** A config or artifact file as a blob to push. */
function fileBlob(digest: Digest, data: Buffer): BlobToPush {
  return { ...memoryLayer({ digest, diffId: digest, mediaType: 'application/octet-stream' }, data), bytes: data };
}

function imageManifest(image: Image): ManifestToPut {
  return { bytes: image.manifestBytes, mediaType: image.manifestMediaType, digest: image.manifestDigest };
}

/** What ko prints: name@sha256:…, or name:tag@sha256:… when the only tag is not latest. */
function printedReference(name: string, tags: readonly string[], digest: string): string {
  const onlyTag = tags.length === 1 && tags[0] !== 'latest' ? `:${tags[0]}` : '';
  return `${name}${onlyTag}@${digest}`;
}

/** A refused mount falls back to an upload (as ggcr does); an abort or an auth failure does not. */
function mountRefused(err: unknown): false {
  if (isAbortError(err) || (err instanceof TskoError && (err.code === 'REGISTRY_AUTH' || err.code === 'REGISTRY_UNREACHABLE'))) throw err;
  return false;
}

function emitBlob(events: EventBus, action: 'existing' | 'known' | 'mounted' | 'pushed' | 'copied', repository: Repository, blob: BlobToPush): void {
  events.emit({ type: 'blob', action, repository: formatReference(repository), digest: blob.digest, size: blob.size });
}

/** Runs `work` over `items` with at most `limit` at once; the first failure rejects. */
async function runLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(workers);
}
