// The distribution-spec client tsko pushes and pulls with: manifests, blobs (HEAD skip, mount,
// monolithic and chunked upload), tags. One client holds one transport (keep-alive pools, probed
// schemes, credentials and tokens), so keep it for the life of the process, as ggcr's Reuse does.
// The work is done in transport.ts (auth, retry) and manifests.ts, blobs.ts, uploads.ts.
import type { Readable } from 'node:stream';
import type { Action } from './auth.js';
import { getBlob, headBlob, mountBlob, openBlobStream } from './blobs.js';
import { type FetchedManifest, type ManifestInfo, checkAuth, getManifest, headManifest, listTags, putManifest } from './manifests.js';
import type { Reference, Repository } from './reference.js';
import { type Transport, type TransportOptions, createTransport } from './transport.js';
import { beginStreamedUpload, type StreamedUpload, uploadBlob, uploadBlobChunked } from './uploads.js';

export type { Action, FetchedManifest, ManifestInfo };

export type RegistryClientOptions = TransportOptions;

export class RegistryClient {
  readonly #transport: Transport;

  constructor(options: RegistryClientOptions = {}) {
    this.#transport = createTransport(options);
  }

  headManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestInfo | undefined> {
    return headManifest(this.#transport, ref, signal);
  }

  getManifest(ref: Reference, signal?: AbortSignal): Promise<FetchedManifest> {
    return getManifest(this.#transport, ref, signal);
  }

  /** Returns the manifest's digest. */
  putManifest(ref: Reference, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
    return putManifest(this.#transport, ref, bytes, mediaType, signal);
  }

  listTags(repo: Repository, signal?: AbortSignal): Promise<string[]> {
    return listTags(this.#transport, repo, signal);
  }

  /**
   * `GET /v2/` with the client's credentials, as `docker login` checks them: resolves when the
   * registry accepts them (or asks for none), rejects with "authentication failed for R as U".
   */
  checkAuth(registry: string, signal?: AbortSignal): Promise<void> {
    return checkAuth(this.#transport, registry, signal);
  }

  headBlob(repo: Repository, digest: string, signal?: AbortSignal): Promise<boolean> {
    return headBlob(this.#transport, repo, digest, signal);
  }

  getBlob(repo: Repository, digest: string, signal?: AbortSignal): Promise<Buffer> {
    return getBlob(this.#transport, repo, digest, signal);
  }

  /** The stream fails at its end when the bytes do not match the digest. */
  openBlobStream(repo: Repository, digest: string, signal?: AbortSignal): Promise<{ size: number; stream: Readable }> {
    return openBlobStream(this.#transport, repo, digest, signal);
  }

  /** Cross-repository mount. True when the registry mounted it (201); false when it wants an upload instead. */
  mountBlob(target: Repository, digest: string, from: Repository, signal?: AbortSignal): Promise<boolean> {
    return mountBlob(this.#transport, target, digest, from, signal);
  }

  /**
   * POST for a session, then one monolithic PUT. Retried as a whole: `body` is called again for
   * each try (undici cannot replay a consumed stream), and may open the bytes asynchronously.
   */
  uploadBlob(target: Repository, digest: string, size: number, body: () => Buffer | Readable | Promise<Buffer | Readable>, signal?: AbortSignal): Promise<void> {
    return uploadBlob(this.#transport, target, digest, size, body, signal);
  }

  uploadBlobChunked(target: Repository, digest: string, data: Buffer, chunkSize: number, signal?: AbortSignal): Promise<void> {
    return uploadBlobChunked(this.#transport, target, digest, data, chunkSize, signal);
  }

  /** A streamed upload of bytes still being made: see uploads.ts. The caller keeps them to upload again if it fails. */
  beginStreamedUpload(target: Repository, body: AsyncIterable<Buffer>, signal?: AbortSignal): StreamedUpload {
    return beginStreamedUpload(this.#transport, target, body, signal);
  }

  /**
   * Loads what requests need (undici, ~50 ms) now instead of at the first request: a command calls
   * it while `go list` and `go build` run, so that time is not spent after them.
   */
  warm(): void {
    this.#transport.warm();
  }

  close(): Promise<void> {
    return this.#transport.close();
  }
}
