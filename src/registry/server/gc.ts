// Retention for dev loops. `retainLatest` drops all but the newest N images of a repository
// (records and tags only); `gcRegistry` then deletes the blobs no manifest reaches. Both may run
// while a server is pushing into the same root, so neither touches anything younger than a grace
// period: a blob's mtime is refreshed whenever a push checks for it, uploads it, mounts it or a
// manifest PUT references it, and a manifest's push time is refreshed on every PUT.
import { readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, listDir, removeQuietly } from './fsutil.js';
import { MAX_MANIFEST_BYTES, referencedDigests } from './manifest.js';
import { parseDigest, type ParsedDigest } from './names.js';
import { createStore, type ManifestRecord, type RegistryStore } from './store.js';

/** How young a blob or manifest must be for gc and retention to leave it alone. */
export const DEFAULT_GC_GRACE_MS = 15 * 60 * 1000;
export const DEFAULT_RETAIN_GRACE_MS = 5 * 60 * 1000;
/** Upload sessions older than this are abandoned (clients finish or retry within minutes). */
export const STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_RETAIN = 20;

export interface GcOptions {
  dryRun?: boolean;
  graceMs?: number;
  /** For tests: the clock gc compares ages against. */
  now?: number;
}

export interface GcResult {
  blobsDeleted: number;
  bytesFreed: number;
  blobsKept: number;
  /** Unreferenced blobs left alone because they are younger than the grace period. */
  blobsInGrace: number;
  uploadsDeleted: number;
  tempFilesDeleted: number;
  dryRun: boolean;
}

interface BlobEntry {
  digest: ParsedDigest;
  path: string;
  size: number;
  mtimeMs: number;
}

async function listBlobs(root: string): Promise<BlobEntry[]> {
  const out: BlobEntry[] = [];
  const base = join(root, 'blobs');
  for (const algorithm of await listDir(base)) {
    for (const prefix of await listDir(join(base, algorithm))) {
      for (const hex of await listDir(join(base, algorithm, prefix))) {
        const digest = parseDigest(`${algorithm}:${hex}`);
        if (!digest || hex.slice(0, 2) !== prefix) continue;
        const path = join(base, algorithm, prefix, hex);
        const s = await stat(path).catch(() => undefined);
        if (s?.isFile()) out.push({ digest, path, size: s.size, mtimeMs: s.mtimeMs });
      }
    }
  }
  return out;
}

async function readManifestBytes(store: RegistryStore, digest: ParsedDigest): Promise<Buffer | undefined> {
  const blob = await store.statBlob(digest);
  if (!blob || blob.size > MAX_MANIFEST_BYTES) return undefined;
  return readFile(blob.path).catch(() => undefined);
}

/** Every digest reachable from the manifests recorded in any repository. */
export async function markReachable(store: RegistryStore): Promise<Set<string>> {
  const marked = new Set<string>();
  // Manifests still to expand: recorded ones, then children and subjects found inside them.
  const queue: Array<{ digest: ParsedDigest; mediaType: string | undefined }> = [];
  for (const repository of await store.listRepositories()) {
    for (const record of await store.listManifestRecords(repository)) {
      const digest = parseDigest(record.digest);
      if (digest) queue.push({ digest, mediaType: record.mediaType });
    }
  }
  const expanded = new Set<string>();
  while (queue.length > 0) {
    const item = queue.pop()!;
    marked.add(item.digest.digest);
    if (expanded.has(item.digest.digest)) continue;
    expanded.add(item.digest.digest);
    const bytes = await readManifestBytes(store, item.digest);
    if (!bytes) continue;
    const refs = referencedDigests(bytes, item.mediaType);
    for (const d of refs.blobs) marked.add(d.digest);
    for (const d of refs.manifests) queue.push({ digest: d, mediaType: undefined });
  }
  return marked;
}

export async function gcRegistry(root: string, options: GcOptions = {}): Promise<GcResult> {
  const dryRun = options.dryRun ?? false;
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const now = options.now ?? Date.now();
  const result: GcResult = { blobsDeleted: 0, bytesFreed: 0, blobsKept: 0, blobsInGrace: 0, uploadsDeleted: 0, tempFilesDeleted: 0, dryRun };
  if (!(await exists(root))) return result;
  const store = createStore(root);

  // Candidates are listed before marking: a blob that appears after the listing is not a candidate.
  const blobs = await listBlobs(root);
  const marked = await markReachable(store);
  for (const blob of blobs) {
    if (marked.has(blob.digest.digest)) {
      result.blobsKept++;
      continue;
    }
    // Re-read the mtime just before deleting: a push may have touched the blob since the listing.
    const current = await stat(blob.path).catch(() => undefined);
    if (!current) continue;
    if (now - current.mtimeMs < graceMs) {
      result.blobsInGrace++;
      continue;
    }
    if (!dryRun) {
      try {
        await unlink(blob.path);
      } catch {
        continue;
      }
    }
    result.blobsDeleted++;
    result.bytesFreed += current.size;
  }

  if (!dryRun) {
    // Links to blobs that are gone would otherwise make HEAD say 404 forever anyway; drop them.
    for (const repository of await store.listRepositories()) {
      for (const d of await store.listBlobLinks(repository)) {
        if (!(await store.statBlob(d))) await store.unlinkBlob(repository, d);
      }
    }
  }

  for (const id of await store.listUploads()) {
    const meta = await store.readUpload(id);
    const started = meta?.startedAt ?? (await stat(join(root, 'uploads', id)).catch(() => undefined))?.mtimeMs ?? now;
    if (now - started < STALE_UPLOAD_MS) continue;
    if (!dryRun) await store.deleteUpload(id);
    result.uploadsDeleted++;
  }
  for (const name of await listDir(store.tmpDir)) {
    const path = join(store.tmpDir, name);
    const s = await stat(path).catch(() => undefined);
    if (!s || now - s.mtimeMs < Math.max(graceMs, 60_000)) continue;
    if (!dryRun) await removeQuietly(path);
    result.tempFilesDeleted++;
  }
  return result;
}

export interface RetainOptions {
  graceMs?: number;
  now?: number;
}

export interface RetainResult {
  /** Digests of manifests removed from the repository. */
  deleted: string[];
  tagsRemoved: string[];
  kept: number;
}

/**
 * Keep the newest `keep` images of a repository (an image being a manifest or index nothing else
 * in the repository contains and that isn't a referrer), with everything they reach: an index's
 * children, and referrers (signatures, SBOMs) whose subject is kept. The rest lose their records
 * and their tags; their blobs go at the next gcRegistry.
 */
export async function retainLatest(root: string, repository: string, keep: number = DEFAULT_RETAIN, options: RetainOptions = {}): Promise<RetainResult> {
  if (!Number.isSafeInteger(keep) || keep < 0) throw new RangeError(`keep must be a non-negative integer, got ${keep}`);
  const graceMs = options.graceMs ?? DEFAULT_RETAIN_GRACE_MS;
  const now = options.now ?? Date.now();
  const store = createStore(root);
  const result: RetainResult = { deleted: [], tagsRemoved: [], kept: 0 };
  if (!(await exists(root))) return result;

  const records = new Map<string, ManifestRecord>();
  for (const record of await store.listManifestRecords(repository)) records.set(record.digest, record);
  const children = new Map<string, string[]>();
  const contained = new Set<string>();
  for (const record of records.values()) {
    const digest = parseDigest(record.digest);
    const bytes = digest ? await readManifestBytes(store, digest) : undefined;
    const kids = bytes ? referencedDigests(bytes, record.mediaType).manifests.map((d) => d.digest).filter((d) => d !== record.subject) : [];
    children.set(record.digest, kids);
    for (const kid of kids) contained.add(kid);
  }
  const isReferrer = (r: ManifestRecord) => r.subject !== undefined && records.has(r.subject);
  const images = [...records.values()]
    .filter((r) => !contained.has(r.digest) && !isReferrer(r))
    .sort((a, b) => b.pushedAt - a.pushedAt || (a.digest < b.digest ? -1 : 1));

  const kept = new Set<string>();
  const keepWithChildren = (digest: string) => {
    const stack = [digest];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (kept.has(d) || !records.has(d)) continue;
      kept.add(d);
      stack.push(...(children.get(d) ?? []));
    }
  };
  for (const image of images.slice(0, keep)) keepWithChildren(image.digest);
  // Anything pushed within the grace period stays: it may be a child whose index is still coming.
  for (const record of records.values()) if (now - record.pushedAt < graceMs) keepWithChildren(record.digest);
  // Referrers follow their subject, repeatedly (a signature of an SBOM of an image).
  for (let changed = true; changed; ) {
    changed = false;
    for (const record of records.values()) {
      if (!kept.has(record.digest) && record.subject !== undefined && kept.has(record.subject)) {
        keepWithChildren(record.digest);
        changed = true;
      }
    }
  }

  const doomed = [...records.keys()].filter((d) => !kept.has(d));
  const doomedSet = new Set(doomed);
  for (const tag of await store.listTags(repository)) {
    const target = await store.resolveTag(repository, tag);
    if (target !== undefined && doomedSet.has(target)) {
      // Tag first, record second: a crash in between leaves a record without a tag, never the reverse.
      await store.deleteTag(repository, tag);
      result.tagsRemoved.push(tag);
    }
  }
  for (const digest of doomed) {
    const d = parseDigest(digest);
    if (d && (await store.deleteManifestRecord(repository, d))) result.deleted.push(digest);
  }
  result.kept = kept.size;
  return result;
}
