// Retention and garbage collection. Manifests go first: `retainLatest` drops all but the newest N
// images of a repository, `--untagged` drops manifests no tag reaches (records and tags only);
// then `gcRegistry` deletes the blobs no remaining manifest reaches, and expires abandoned upload
// sessions. All of it may run while a server is pushing into the same root, so nothing younger
// than a grace period is touched: a blob's mtime is refreshed whenever a push checks for it,
// uploads it, mounts it or a manifest PUT references it, and a manifest's push time is refreshed
// on every PUT.
import { readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_UPLOAD_IDLE_MS, expireUploads } from './expiry.js';
import { exists, listDir } from './fsutil.js';
import { MAX_MANIFEST_BYTES, referencedDigests } from './manifest.js';
import { parseDigest, type ParsedDigest } from './names.js';
import { createStore, type ManifestRecord, type RegistryStore } from './store.js';

/**
 * How young a blob or manifest must be for gc to leave it alone: a push in progress has uploaded
 * (or HEAD-checked) blobs and child manifests that the manifest or index it PUTs next will
 * reference, and must not find them gone. `--grace-seconds 0` skips it when nothing is pushing.
 */
export const DEFAULT_GC_GRACE_MS = 15 * 60 * 1000;
export const DEFAULT_RETAIN_GRACE_MS = 5 * 60 * 1000;
export const DEFAULT_RETAIN = 20;

export interface GcOptions {
  dryRun?: boolean;
  graceMs?: number;
  /** First remove manifests no tag reaches: not tagged, not in a kept index, not a referrer of a kept manifest. */
  untagged?: boolean;
  /** First keep only the newest `keep` images of every repository (as `retainLatest`). */
  keep?: number;
  /** Upload sessions with no new bytes for this long are removed (default an hour). */
  uploadIdleMs?: number;
  /** For tests: the clock gc compares ages against. */
  now?: number;
}

export interface GcResult {
  /** Manifests removed from their repository by `untagged` or `keep` (repository@digest). */
  manifestsDeleted: number;
  tagsRemoved: number;
  /** Manifests `untagged` or `keep` would remove but left alone: pushed within the grace period. */
  manifestsInGrace: number;
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

const recordKey = (repository: string, digest: string) => `${repository}@${digest}`;

/**
 * Every digest reachable from the manifests recorded in any repository, leaving out the records
 * in `removed` (`repository@digest`: what a dry run would have removed first).
 */
export async function markReachable(store: RegistryStore, removed: ReadonlySet<string> = new Set()): Promise<Set<string>> {
  const marked = new Set<string>();
  // Manifests still to expand: recorded ones, then children and subjects found inside them.
  const queue: Array<{ digest: ParsedDigest; mediaType: string | undefined }> = [];
  for (const repository of await store.listRepositories()) {
    for (const record of await store.listManifestRecords(repository)) {
      if (removed.has(recordKey(repository, record.digest))) continue;
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
  const result: GcResult = {
    manifestsDeleted: 0,
    tagsRemoved: 0,
    manifestsInGrace: 0,
    blobsDeleted: 0,
    bytesFreed: 0,
    blobsKept: 0,
    blobsInGrace: 0,
    uploadsDeleted: 0,
    tempFilesDeleted: 0,
    dryRun,
  };
  if (!(await exists(root))) return result;
  const store = createStore(root);

  const removed = new Set<string>();
  if (options.untagged || options.keep !== undefined) {
    if (options.keep !== undefined) checkKeep(options.keep);
    for (const repository of await store.listRepositories()) {
      const plan = await planRepository(store, repository, { keep: options.keep, untagged: options.untagged ?? false, graceMs, now });
      result.manifestsInGrace += plan.inGrace;
      if (dryRun) {
        for (const record of plan.doomed) removed.add(recordKey(repository, record.digest));
        result.manifestsDeleted += plan.doomed.length;
        result.tagsRemoved += plan.tags.length;
      } else {
        const applied = await applyPlan(store, repository, plan);
        result.manifestsDeleted += applied.deleted.length;
        result.tagsRemoved += applied.tagsRemoved.length;
      }
    }
  }

  // Candidates are listed before marking: a blob that appears after the listing is not a candidate.
  const blobs = await listBlobs(root);
  const marked = await markReachable(store, removed);
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

  const expired = await expireUploads(store, { idleMs: options.uploadIdleMs ?? DEFAULT_UPLOAD_IDLE_MS, now, dryRun });
  result.uploadsDeleted = expired.uploadsDeleted;
  result.tempFilesDeleted = expired.tempFilesDeleted;
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
  checkKeep(keep);
  const graceMs = options.graceMs ?? DEFAULT_RETAIN_GRACE_MS;
  const now = options.now ?? Date.now();
  if (!(await exists(root))) return { deleted: [], tagsRemoved: [], kept: 0 };
  const store = createStore(root);
  const plan = await planRepository(store, repository, { keep, untagged: false, graceMs, now });
  return { ...(await applyPlan(store, repository, plan)), kept: plan.kept };
}

function checkKeep(keep: number): void {
  if (!Number.isSafeInteger(keep) || keep < 0) throw new RangeError(`keep must be a non-negative integer, got ${keep}`);
}

interface PlanRule {
  keep: number | undefined;
  untagged: boolean;
  graceMs: number;
  now: number;
}

interface RepositoryPlan {
  /** Records to remove, as read when planning (a record changed since is left alone). */
  doomed: ManifestRecord[];
  /** Tags pointing at doomed manifests, with the digest they pointed at. */
  tags: Array<{ tag: string; digest: string }>;
  kept: number;
  /** Records kept only because they (or an index holding them) were pushed within the grace period. */
  inGrace: number;
}

/**
 * Which manifests of a repository go. An *image* is a manifest or index that no other manifest of
 * the repository contains and that isn't a referrer. A manifest stays when it passes every rule
 * asked for: `keep` — it is one of the newest `keep` images or inside one; `untagged` — a tag
 * points at it or at an index containing it. Referrers (signatures, SBOMs) stay with a subject
 * that stays, and anything pushed within the grace period stays, with its children.
 */
async function planRepository(store: RegistryStore, repository: string, rule: PlanRule): Promise<RepositoryPlan> {
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
  const tags: Array<{ tag: string; digest: string }> = [];
  for (const tag of await store.listTags(repository)) {
    const digest = await store.resolveTag(repository, tag);
    if (digest !== undefined) tags.push({ tag, digest });
  }

  /** The given manifests and every manifest inside them. */
  const withChildren = (roots: Iterable<string>, into = new Set<string>()): Set<string> => {
    const stack = [...roots];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (into.has(d) || !records.has(d)) continue;
      into.add(d);
      stack.push(...(children.get(d) ?? []));
    }
    return into;
  };
  /** Referrers follow their subject, repeatedly (a signature of an SBOM of an image). */
  const withReferrers = (kept: Set<string>): void => {
    for (let changed = true; changed; ) {
      changed = false;
      for (const record of records.values()) {
        if (!kept.has(record.digest) && record.subject !== undefined && kept.has(record.subject)) {
          withChildren([record.digest], kept);
          changed = true;
        }
      }
    }
  };

  let kept = new Set(records.keys());
  if (rule.keep !== undefined) {
    const isReferrer = (r: ManifestRecord) => r.subject !== undefined && records.has(r.subject);
    const images = [...records.values()]
      .filter((r) => !contained.has(r.digest) && !isReferrer(r))
      .sort((a, b) => b.pushedAt - a.pushedAt || (a.digest < b.digest ? -1 : 1));
    const newest = withChildren(images.slice(0, rule.keep).map((r) => r.digest));
    kept = new Set([...kept].filter((d) => newest.has(d)));
  }
  if (rule.untagged) {
    const tagged = withChildren(tags.map((t) => t.digest));
    kept = new Set([...kept].filter((d) => tagged.has(d)));
  }
  withReferrers(kept);
  const beforeGrace = kept.size;
  // Anything pushed within the grace period stays: it may be a child whose index is still coming.
  withChildren([...records.values()].filter((r) => rule.now - r.pushedAt < rule.graceMs).map((r) => r.digest), kept);
  withReferrers(kept);

  const doomed = [...records.values()].filter((r) => !kept.has(r.digest));
  const doomedDigests = new Set(doomed.map((r) => r.digest));
  return { doomed, tags: tags.filter((t) => doomedDigests.has(t.digest)), kept: kept.size, inGrace: kept.size - beforeGrace };
}

async function applyPlan(store: RegistryStore, repository: string, plan: RepositoryPlan): Promise<{ deleted: string[]; tagsRemoved: string[] }> {
  const deleted: string[] = [];
  const tagsRemoved: string[] = [];
  const changedSince = async (record: ManifestRecord) => {
    const d = parseDigest(record.digest);
    const current = d ? await store.readManifestRecord(repository, d) : undefined;
    // Pushed again since the plan was made (a new push time): it is wanted after all.
    return current === undefined || current.pushedAt !== record.pushedAt;
  };
  const doomed = new Map(plan.doomed.map((r) => [r.digest, r]));
  for (const { tag, digest } of plan.tags) {
    const record = doomed.get(digest);
    if (!record || (await changedSince(record)) || (await store.resolveTag(repository, tag)) !== digest) continue;
    // Tag first, record second: a crash in between leaves a record without a tag, never the reverse.
    if (await store.deleteTag(repository, tag)) tagsRemoved.push(tag);
  }
  for (const record of plan.doomed) {
    if (await changedSince(record)) continue;
    const d = parseDigest(record.digest);
    if (d && (await store.deleteManifestRecord(repository, d))) deleted.push(record.digest);
  }
  return { deleted, tagsRemoved };
}
