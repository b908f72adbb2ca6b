// A small content-addressed store on disk for base-image manifests and configs: one file per
// digest, written atomically, verified on read. Base layers are never stored here (they are
// mounted or copied registry to registry).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
    const target = this.path(digest);
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(temp, data);
    await rename(temp, target);
  }

  /** Remembers the digest a tag pointed at, for offline use when the registry cannot be reached. */
  async putTag(reference: string, digest: string): Promise<void> {
    const dir = join(this.dir, 'tags');
    await mkdir(dir, { recursive: true });
    const file = join(dir, encodeURIComponent(reference));
    const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(temp, digest);
    await rename(temp, file);
  }

  async getTag(reference: string): Promise<string | undefined> {
    const text = await readFile(join(this.dir, 'tags', encodeURIComponent(reference)), 'utf8').catch(() => undefined);
    return text?.trim() || undefined;
  }
}
