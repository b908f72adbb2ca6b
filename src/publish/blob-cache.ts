// A small content-addressed store on disk for base-image manifests and configs: one file per
// digest, written atomically, verified on read. Base layers are never stored here (they are
// mounted or copied registry to registry).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { digestHex, sha256 } from '../image/digest.js';

export class BlobCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  private path(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  async get(digest: string): Promise<Buffer | undefined> {
    const data = await readFile(this.path(digest)).catch(() => undefined);
    // A damaged entry is a miss, not an error: it is fetched again and overwritten.
    return data && sha256(data) === digest ? data : undefined;
  }

  async put(digest: string, data: Buffer): Promise<void> {
    await writeFileAtomic(this.path(digest), data);
  }

  /** Remembers the digest a tag pointed at, for offline use when the registry cannot be reached. */
  async putTag(reference: string, digest: string): Promise<void> {
    await writeFileAtomic(join(this.dir, 'tags', encodeURIComponent(reference)), digest);
  }

  async getTag(reference: string): Promise<string | undefined> {
    const text = await readFile(join(this.dir, 'tags', encodeURIComponent(reference)), 'utf8').catch(() => undefined);
    return text?.trim() || undefined;
  }
}
