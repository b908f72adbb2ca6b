// Streams a new binary layer to its registry while it is being compressed. The go builder asks for
// a tap as it starts writing the layer; the tap POSTs for an upload session at once and sends the
// compressed bytes in one streamed PATCH as they come. Nothing is committed then: once the layer
// is written the upload waits, keyed by its digest, until the registry writer reaches that blob.
// The writer's rules still decide (known, HEAD, mount: then the session is cancelled, the blob is
// never stored twice); only when it would upload does it close this session with `PUT ?digest=`.
// Any failure of the stream (a registry that refuses a PATCH without Content-Range, a reset, a
// registry that lost bytes) leaves the writer's ordinary upload from the layer file, which retries
// as always. A registry that refused a streamed PATCH is not asked again by this process.
import type { Digest } from '../image/digest.js';
import type { LayerTap } from '../image/layer-writer.js';
import type { RegistryClient } from '../registry/client.js';
import type { Repository } from '../registry/reference.js';
import { RegistryError } from '../registry/http.js';
import type { StreamedUpload } from '../registry/uploads.js';

/** Bytes queued for the PATCH before the layer writer waits for the network. */
const QUEUE_HIGH_WATER = 8 * 1024 * 1024;

/** A finished layer's upload, waiting for the registry writer to close or cancel it. */
export interface PendingStream {
  /** Closes the session (`PUT ?digest=`); false when the stream failed and the blob must be uploaded from its file. */
  complete(): Promise<boolean>;
  cancel(): Promise<void>;
  /** Why the stream failed (`429`, `ECONNRESET`, …), once complete() returned false: the upload from the file is its retry. */
  readonly failureCause: string | undefined;
}

/** A short cause for a stream's failure, as retry events name them. */
function causeOf(err: unknown): string {
  if (err instanceof RegistryError) return err.causeCode;
  const { code, status } = (err ?? {}) as { code?: unknown; status?: unknown };
  if (typeof status === 'number') return String(status);
  return typeof code === 'string' && code !== '' ? code : 'STREAM_FAILED';
}

export interface StreamedUploadsOptions {
  client: Pick<RegistryClient, 'beginStreamedUpload'>;
  /** Where an import path's images go. */
  repositoryFor(importPath: string): Repository;
  /** The registry this process serves: its layers are handed over by path, never streamed. */
  inProcessAddress?: string | undefined;
}

interface Entry {
  upload: StreamedUpload;
  /** What ended the stream, once it failed. */
  failure?: unknown;
  /** Set when the layer ended; the stream is usable only then. */
  layer?: { digest: string; size: number };
  failed: boolean;
  /** Where it was started from: a newer layer for the same slot makes an untaken one stale. */
  slot: string;
}

export class StreamedUploads {
  private readonly client: StreamedUploadsOptions['client'];
  private readonly repositoryFor: (importPath: string) => Repository;
  private readonly inProcessAddress: string | undefined;
  /** Registries that refused a streamed PATCH: every later blob goes up from its file. */
  private readonly refused = new Set<string>();
  /** Finished streams by `registry/repository@digest`, until the writer takes them. */
  private readonly ready = new Map<string, Entry>();
  /** The stream each slot (import path and platform) started last. */
  private readonly bySlot = new Map<string, Entry>();

  constructor(options: StreamedUploadsOptions) {
    this.client = options.client;
    this.repositoryFor = options.repositoryFor;
    this.inProcessAddress = options.inProcessAddress;
  }

  /** A tap for a layer about to be written for `importPath` on `platform`, or none when it cannot be streamed. */
  tap(importPath: string, platform: string, signal?: AbortSignal): LayerTap | undefined {
    let repository: Repository;
    try {
      repository = this.repositoryFor(importPath);
    } catch {
      return undefined; // the publish reports a bad KO_DOCKER_REPO itself
    }
    if (repository.registry === this.inProcessAddress || this.refused.has(repository.registry)) return undefined;
    const slot = `${importPath} ${platform}`;
    this.discard(this.bySlot.get(slot));

    const queue: Buffer[] = [];
    let queued = 0;
    let ended = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    let drained: { promise: Promise<void>; resolve: () => void } | undefined;
    const signalAll = () => {
      wake?.();
      wake = undefined;
      if (drained && (queued < QUEUE_HIGH_WATER || entry.failed)) {
        drained.resolve();
        drained = undefined;
      }
    };
    async function* body(): AsyncGenerator<Buffer> {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          queued -= chunk.length;
          signalAll();
          yield chunk;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    const upload = this.client.beginStreamedUpload(repository, body(), signal);
    const entry: Entry = { upload, failed: false, slot };
    this.bySlot.set(slot, entry);
    const fail = (err: unknown) => {
      failure ??= err;
      entry.failure ??= err;
      entry.failed = true;
      queue.length = 0;
      queued = 0;
      signalAll();
    };
    // A stream the registry ended early (refused, reset) stops taking bytes: the layer writer
    // goes on alone, and the writer uploads the file.
    upload.sent.catch((err: unknown) => {
      if (isRefusal(err)) this.refused.add(repository.registry);
      fail(err);
      // The session the POST opened (if it did) is dropped now, not when a newer layer comes.
      if (this.bySlot.get(slot) === entry) this.bySlot.delete(slot);
      void upload.cancel();
    });
    return {
      write: (chunk) => {
        if (entry.failed) return undefined;
        queue.push(chunk);
        queued += chunk.length;
        signalAll();
        if (queued < QUEUE_HIGH_WATER) return undefined;
        drained ??= withResolvers();
        return drained.promise;
      },
      end: (digest: Digest, size: number) => {
        ended = true;
        signalAll();
        // A stream that failed on the way is kept too: the writer, taking it, learns why and
        // reports its upload from the file as the retry it is.
        entry.layer = { digest, size };
        const key = `${repository.registry}/${repository.repository}@${digest}`;
        this.discard(this.ready.get(key));
        this.ready.set(key, entry);
      },
      fail: (err) => {
        fail(err);
        void upload.cancel();
      },
    };
  }

  /**
   * The finished stream of `digest` into `repository`, if one is waiting: the writer then either
   * completes it (it would upload) or cancels it (the registry has the blob, or it was mounted).
   */
  take(repository: Repository, digest: string): PendingStream | undefined {
    const key = `${repository.registry}/${repository.repository}@${digest}`;
    const entry = this.ready.get(key);
    if (!entry) return undefined;
    this.ready.delete(key);
    if (this.bySlot.get(entry.slot) === entry) this.bySlot.delete(entry.slot);
    const { layer } = entry;
    let failureCause: string | undefined;
    return {
      complete: async () => {
        if (entry.failed || !layer) {
          failureCause = causeOf(entry.failure);
          return false;
        }
        try {
          await entry.upload.finish(layer.digest, layer.size);
          return true;
        } catch (err) {
          failureCause = causeOf(err);
          void entry.upload.cancel();
          return false;
        }
      },
      cancel: () => entry.upload.cancel(),
      get failureCause() {
        return failureCause;
      },
    };
  }

  /** Cancels every stream nobody took (a publish that failed or was superseded). */
  async close(): Promise<void> {
    const entries = new Set([...this.ready.values(), ...this.bySlot.values()]);
    this.ready.clear();
    this.bySlot.clear();
    await Promise.all([...entries].map((entry) => entry.upload.cancel()));
  }

  private discard(entry: Entry | undefined): void {
    if (!entry) return;
    for (const [key, value] of this.ready) if (value === entry) this.ready.delete(key);
    if (this.bySlot.get(entry.slot) === entry) this.bySlot.delete(entry.slot);
    void entry.upload.cancel();
  }
}

/** A 4xx other than auth and rate limits: the registry does not take streamed PATCHes. */
function isRefusal(err: unknown): boolean {
  const status = (err as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 401 && status !== 403 && status !== 408 && status !== 429;
}

function withResolvers(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
