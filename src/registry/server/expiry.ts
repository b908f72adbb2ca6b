// Abandoned upload sessions: a client that POSTs and PATCHes and never PUTs (killed, lost its
// connection, gave up) leaves its partial data under uploads/. A session idle for longer than the
// expiry (default an hour; clients retry within seconds) is removed, by the running server on a
// timer and by `tsko registry gc`. Stale temp files of interrupted atomic writes go the same way.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryContext } from './context.js';
import { listDir, removeQuietly } from './fsutil.js';
import type { RegistryStore } from './store.js';

export const DEFAULT_UPLOAD_IDLE_MS = 60 * 60 * 1000;
/** A temp file younger than this may be a write in progress, whatever the expiry. */
const MIN_TEMP_AGE_MS = 60_000;
/** Sessions removed per sweep at most, so one sweep of a huge backlog doesn't hog the disk. */
const MAX_REMOVALS_PER_SWEEP = 500;

export interface ExpireOptions {
  idleMs: number;
  now: number;
  dryRun?: boolean;
  /** Sessions a request is using right now: never removed under it. */
  busy?: (id: string) => boolean;
  /** Removes one session (the server does it under the session's lock); false if it was kept after all. */
  remove?: (id: string) => Promise<boolean>;
  maxRemovals?: number;
}

export interface ExpireResult {
  uploadsDeleted: number;
  tempFilesDeleted: number;
}

/** Remove upload sessions idle for `idleMs` or more, and temp files at least that old. */
export async function expireUploads(store: RegistryStore, options: ExpireOptions): Promise<ExpireResult> {
  const result: ExpireResult = { uploadsDeleted: 0, tempFilesDeleted: 0 };
  const max = options.maxRemovals ?? Number.POSITIVE_INFINITY;
  for (const id of await store.listUploads()) {
    if (result.uploadsDeleted >= max) break;
    if (options.busy?.(id)) continue;
    const active = await store.uploadLastActive(id);
    if (active === undefined || options.now - active < options.idleMs) continue;
    if (options.dryRun) result.uploadsDeleted++;
    else if (options.remove === undefined) {
      await store.deleteUpload(id);
      result.uploadsDeleted++;
    } else if (await options.remove(id)) result.uploadsDeleted++;
  }
  const tempAge = Math.max(options.idleMs, MIN_TEMP_AGE_MS);
  for (const name of await listDir(store.tmpDir)) {
    const path = join(store.tmpDir, name);
    const s = await stat(path).catch(() => undefined);
    if (!s || options.now - s.mtimeMs < tempAge) continue;
    if (!options.dryRun) await removeQuietly(path);
    result.tempFilesDeleted++;
  }
  return result;
}

export interface UploadSweeper {
  /** One sweep now (tests, and the first one after start); resolves with the sessions removed. */
  sweep(): Promise<number>;
  /** No more sweeps; waits for a running one. */
  stop(): Promise<void>;
}

/**
 * The server's own expiry: a sweep every quarter of the idle time (between 100 ms and 5 minutes),
 * one at a time, on an unref'd timer, so a session goes between `idleMs` and 1.25 × `idleMs` after
 * its last bytes. The in-memory hash of a removed session goes with it.
 */
export function startUploadSweeper(ctx: RegistryContext, idleMs: number): UploadSweeper {
  const intervalMs = Math.min(Math.max(Math.floor(idleMs / 4), 100), 5 * 60 * 1000);
  let running: Promise<number> | undefined;
  const sweep = (): Promise<number> => {
    running ??= (async () => {
      try {
        const lock = (id: string) => `upload:${id}`;
        const { uploadsDeleted } = await expireUploads(ctx.store, {
          idleMs,
          now: Date.now(),
          busy: (id) => ctx.isLocked(lock(id)),
          maxRemovals: MAX_REMOVALS_PER_SWEEP,
          remove: (id) =>
            ctx.withLock(lock(id), async () => {
              // Checked again under the lock: a PATCH may have landed since the listing.
              const active = await ctx.store.uploadLastActive(id);
              if (active !== undefined && Date.now() - active < idleMs) return false;
              ctx.uploads.delete(id);
              await ctx.store.deleteUpload(id);
              return true;
            }),
        });
        // Hashes of sessions removed some other way (gc, by hand) go too.
        for (const id of ctx.uploads.keys()) {
          if (!ctx.isLocked(lock(id)) && (await ctx.store.uploadLastActive(id)) === undefined) ctx.uploads.delete(id);
        }
        return uploadsDeleted;
      } catch (err) {
        ctx.log.error(err);
        return 0;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const timer = setInterval(() => void sweep(), intervalMs);
  timer.unref();
  return {
    sweep,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
