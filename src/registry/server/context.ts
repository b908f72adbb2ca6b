// What every request handler shares: the store, the in-memory state of running uploads, limits,
// a per-key lock so two requests on one upload (or one tag) don't interleave, read buffers for
// blob downloads, and where the server's few log lines go.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StorageFullError } from './errors.js';
import type { UploadHashState } from './ingest.js';
import type { RegistryStore } from './store.js';

/** Where the server's lines go; the server never prints itself. */
export interface RegistryLog {
  /** Unexpected failures (answered with 500), and a full disk once per episode. */
  error(err: unknown): void;
  /** Expected and harmless: a client that went away mid-request. Shown only when asked for. */
  debug(message: string): void;
}

/** Reusable buffers for reading blob files: a burst of downloads doesn't churn the allocator. */
export interface BufferPool {
  readonly size: number;
  take(): Buffer;
  /** Only for a buffer no pending write still refers to. */
  give(buffer: Buffer): void;
}

export interface RegistryContext {
  store: RegistryStore;
  uploads: Map<string, UploadHashState>;
  maxBlobBytes: number;
  readBuffers: BufferPool;
  log: RegistryLog;
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** True while a request holds or waits for `key`'s lock. */
  isLocked(key: string): boolean;
  /** Log a full disk, once until storage is known to work again (`storageWorks`). */
  storageFull(err: StorageFullError): void;
  /** A write went through: the next full disk is news again. */
  storageWorks(): void;
}

export interface RouteRequest {
  req: IncomingMessage;
  res: ServerResponse;
  repository: string;
  query: URLSearchParams;
}

/** 1 MiB reads keep a 100 MB download to ~100 thread-pool round trips and socket writes. */
export const READ_BUFFER_BYTES = 1 << 20;
/** Spare buffers kept between downloads; more concurrent downloads allocate and let GC free. */
const SPARE_READ_BUFFERS = 4;

export function createBufferPool(size: number, spares: number): BufferPool {
  const free: Buffer[] = [];
  return {
    size,
    take: () => free.pop() ?? Buffer.allocUnsafeSlow(size),
    give(buffer) {
      if (free.length < spares && buffer.length === size) free.push(buffer);
    },
  };
}

export function createContext(store: RegistryStore, maxBlobBytes: number, log: RegistryLog): RegistryContext {
  const tails = new Map<string, Promise<unknown>>();
  let fullReported = false;
  return {
    store,
    uploads: new Map(),
    maxBlobBytes,
    readBuffers: createBufferPool(READ_BUFFER_BYTES, SPARE_READ_BUFFERS),
    log,
    withLock(key, fn) {
      const previous = tails.get(key) ?? Promise.resolve();
      const run = previous.then(fn, fn);
      const tail = run.catch(() => undefined);
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return run;
    },
    isLocked: (key) => tails.has(key),
    storageFull(err) {
      if (fullReported) return;
      fullReported = true;
      log.error(err);
    },
    storageWorks() {
      fullReported = false;
    },
  };
}
