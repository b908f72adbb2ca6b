// The registry's storage on disk. Layout under the root (documented in docs/embedded-registry.md):
//
//   blobs/<alg>/<hex[0:2]>/<hex>                 content-addressed bytes (layers, configs, manifests)
//   uploads/<uuid>/data, uploads/<uuid>/meta.json upload sessions; never served, gc'd when stale
//   tmp/                                          temp files renamed into place by atomic writes
//   repositories/<name>/_layers/<alg>/<hex>       empty marker: this blob belongs to the repository
//   repositories/<name>/_manifests/<alg>/<hex>    JSON ManifestRecord: the repository has this
//                                                 manifest, with its media type and push time
//   repositories/<name>/_tags/<tag>               the digest the tag points at
//
// Order of writes keeps every reader's view consistent after a crash: a blob is renamed into
// place only after it was hashed and fsynced; a manifest's record is written after its bytes;
// a tag is written after the record it points at. Names and tags passed in were checked against
// the spec grammar (names.ts), which cannot produce "..", "." or a leading "_", so they can't
// escape the root or collide with the "_"-prefixed internal directories.
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { isNotFound, listDir, removeQuietly, writeFileAtomic, fsyncDir } from './fsutil.js';
import { parseDigest, type ParsedDigest } from './names.js';

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  /** ms since the epoch of the latest PUT of this manifest into this repository (retention order). */
  pushedAt: number;
  artifactType?: string;
  /** Digest of the manifest this one refers to (the referrers API). */
  subject?: string;
  annotations?: Record<string, string>;
}

export interface UploadMeta {
  repository: string;
  startedAt: number;
}

export interface BlobStat {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface RegistryStore {
  readonly root: string;
  readonly tmpDir: string;
  init(): Promise<void>;

  blobPath(digest: ParsedDigest): string;
  statBlob(digest: ParsedDigest): Promise<BlobStat | undefined>;
  /** Refresh a blob's mtime so gc's grace period protects it while a push is about to reference it. */
  touchBlob(digest: ParsedDigest): Promise<void>;
  repositoryHasBlob(repository: string, digest: ParsedDigest): Promise<boolean>;
  linkBlob(repository: string, digest: ParsedDigest): Promise<void>;
  unlinkBlob(repository: string, digest: ParsedDigest): Promise<boolean>;
  listBlobLinks(repository: string): Promise<ParsedDigest[]>;

  createUpload(repository: string): Promise<string>;
  uploadDataPath(id: string): string;
  readUpload(id: string): Promise<UploadMeta | undefined>;
  deleteUpload(id: string): Promise<void>;
  listUploads(): Promise<string[]>;
  /** When the session last changed (created, bytes added or cut back), in ms; undefined if it is gone. */
  uploadLastActive(id: string): Promise<number | undefined>;

  readManifestRecord(repository: string, digest: ParsedDigest): Promise<ManifestRecord | undefined>;
  writeManifestRecord(repository: string, record: ManifestRecord): Promise<void>;
  deleteManifestRecord(repository: string, digest: ParsedDigest): Promise<boolean>;
  listManifestRecords(repository: string): Promise<ManifestRecord[]>;

  resolveTag(repository: string, tag: string): Promise<string | undefined>;
  writeTag(repository: string, tag: string, digest: string): Promise<void>;
  deleteTag(repository: string, tag: string): Promise<boolean>;
  listTags(repository: string): Promise<string[]>;

  repositoryExists(repository: string): Promise<boolean>;
  listRepositories(): Promise<string[]>;
}

const INTERNAL_DIRS = new Set(['_layers', '_manifests', '_tags']);

export function createStore(root: string): RegistryStore {
  const tmpDir = join(root, 'tmp');
  const uploadsDir = join(root, 'uploads');
  const reposDir = join(root, 'repositories');
  const repoDir = (repository: string) => join(reposDir, ...repository.split('/'));
  const blobPath = (d: ParsedDigest) => join(root, 'blobs', d.algorithm, d.hex.slice(0, 2), d.hex);
  const layerLink = (repository: string, d: ParsedDigest) => join(repoDir(repository), '_layers', d.algorithm, d.hex);
  const manifestFile = (repository: string, d: ParsedDigest) => join(repoDir(repository), '_manifests', d.algorithm, d.hex);
  const tagFile = (repository: string, tag: string) => join(repoDir(repository), '_tags', tag);

  async function statBlob(d: ParsedDigest): Promise<BlobStat | undefined> {
    const path = blobPath(d);
    try {
      const s = await stat(path);
      return s.isFile() ? { path, size: s.size, mtimeMs: s.mtimeMs } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function readText(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function digestsUnder(dir: string): Promise<ParsedDigest[]> {
    const out: ParsedDigest[] = [];
    for (const algorithm of await listDir(dir)) {
      for (const hex of await listDir(join(dir, algorithm))) {
        const d = parseDigest(`${algorithm}:${hex}`);
        if (d) out.push(d);
      }
    }
    return out;
  }

  return {
    root,
    tmpDir,
    async init() {
      for (const dir of [tmpDir, uploadsDir, reposDir, join(root, 'blobs')]) await mkdir(dir, { recursive: true });
    },

    blobPath,
    statBlob,
    async touchBlob(d) {
      const now = new Date();
      await utimes(blobPath(d), now, now).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    },
    async repositoryHasBlob(repository, d) {
      try {
        await stat(layerLink(repository, d));
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
      return (await statBlob(d)) !== undefined;
    },
    async linkBlob(repository, d) {
      try {
        await stat(layerLink(repository, d));
        return;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      await writeFileAtomic(tmpDir, layerLink(repository, d), '');
    },
    async unlinkBlob(repository, d) {
      try {
        await unlink(layerLink(repository, d));
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
    listBlobLinks: (repository) => digestsUnder(join(repoDir(repository), '_layers')),

    async createUpload(repository) {
      const id = randomUUID();
      const dir = join(uploadsDir, id);
      await mkdir(dir, { recursive: true });
      const meta: UploadMeta = { repository, startedAt: Date.now() };
      await writeFileAtomic(tmpDir, join(dir, 'meta.json'), JSON.stringify(meta));
      // The data file exists from the start so its size is the upload's offset (0 bytes received).
      await (await open(join(dir, 'data'), 'w')).close();
      return id;
    },
    uploadDataPath: (id) => join(uploadsDir, id, 'data'),
    async readUpload(id) {
      const text = await readText(join(uploadsDir, id, 'meta.json'));
      if (text === undefined) return undefined;
      try {
        const meta = JSON.parse(text) as UploadMeta;
        return typeof meta.repository === 'string' ? meta : undefined;
      } catch {
        return undefined;
      }
    },
    async deleteUpload(id) {
      await removeQuietly(join(uploadsDir, id));
    },
    listUploads: () => listDir(uploadsDir),
    async uploadLastActive(id) {
      const dir = await stat(join(uploadsDir, id)).catch(() => undefined);
      if (!dir) return undefined;
      const data = await stat(join(uploadsDir, id, 'data')).catch(() => undefined);
      return Math.max(dir.mtimeMs, data?.mtimeMs ?? 0);
    },

    async readManifestRecord(repository, d) {
      const text = await readText(manifestFile(repository, d));
      if (text === undefined) return undefined;
      try {
        return JSON.parse(text) as ManifestRecord;
      } catch {
        // Written atomically, so this is only reachable through outside tampering.
        return undefined;
      }
    },
    async writeManifestRecord(repository, record) {
      const d = parseDigest(record.digest);
      if (!d) throw new Error(`bad digest in manifest record: ${record.digest}`);
      await writeFileAtomic(tmpDir, manifestFile(repository, d), JSON.stringify(record));
    },
    async deleteManifestRecord(repository, d) {
      try {
        await unlink(manifestFile(repository, d));
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
      await fsyncDir(join(repoDir(repository), '_manifests', d.algorithm));
      return true;
    },
    async listManifestRecords(repository) {
      const records: ManifestRecord[] = [];
      for (const d of await digestsUnder(join(repoDir(repository), '_manifests'))) {
        const text = await readText(manifestFile(repository, d));
        if (text === undefined) continue;
        try {
          records.push(JSON.parse(text) as ManifestRecord);
        } catch {
          // see readManifestRecord
        }
      }
      return records;
    },

    async resolveTag(repository, tag) {
      const text = await readText(tagFile(repository, tag));
      return text === undefined ? undefined : text.trim();
    },
    async writeTag(repository, tag, digest) {
      await writeFileAtomic(tmpDir, tagFile(repository, tag), digest);
    },
    async deleteTag(repository, tag) {
      try {
        await unlink(tagFile(repository, tag));
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
      await fsyncDir(join(repoDir(repository), '_tags'));
      return true;
    },
    async listTags(repository) {
      // Tags are written through tmp/ and renamed, so every entry here is a whole tag.
      return listDir(join(repoDir(repository), '_tags'));
    },

    async repositoryExists(repository) {
      for (const sub of INTERNAL_DIRS) {
        try {
          await stat(join(repoDir(repository), sub));
          return true;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      return false;
    },
    async listRepositories() {
      const out: string[] = [];
      // Bounded by the directory tree itself; names nest at most MAX_NAME_LENGTH/2 levels.
      const walk = async (dir: string, prefix: string): Promise<void> => {
        const entries = await listDir(dir);
        if (entries.some((e) => INTERNAL_DIRS.has(e))) out.push(prefix);
        for (const entry of entries) {
          if (entry.startsWith('_')) continue;
          const child = join(dir, entry);
          const s = await stat(child).catch(() => undefined);
          if (s?.isDirectory()) await walk(child, prefix ? `${prefix}/${entry}` : entry);
        }
      };
      await walk(reposDir, '');
      return out.filter((r) => r !== '').sort();
    },
  };
}
