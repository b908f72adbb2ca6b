// What every request handler shares: the store, the in-memory state of running uploads, limits,
// and a per-key lock so two requests on one upload (or one tag) don't interleave.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UploadHashState } from './ingest.js';
import type { RegistryStore } from './store.js';

export interface RegistryContext {
  store: RegistryStore;
  uploads: Map<string, UploadHashState>;
  maxBlobBytes: number;
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

export interface RouteRequest {
  req: IncomingMessage;
  res: ServerResponse;
  repository: string;
  query: URLSearchParams;
}

export function createContext(store: RegistryStore, maxBlobBytes: number): RegistryContext {
  const tails = new Map<string, Promise<unknown>>();
  return {
    store,
    uploads: new Map(),
    maxBlobBytes,
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
  };
}
