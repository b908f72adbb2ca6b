// Remembers, across runs, which repositories of a registry a blob was put in, so pushing it to a
// new repository of the same registry is a cross-repo mount instead of a second upload or copy
// (skopeo's blob-info cache does the same). A stale entry costs one failed mount, nothing more.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../image/digest.js';

const MAX_CANDIDATES = 3;

export class BlobLocations {
  private readonly dir: string | undefined;
  private readonly memory = new Map<string, string[]>();

  /** Without a dir, locations are remembered for this process only. */
  constructor(dir?: string) {
    this.dir = dir;
  }

  private file(registry: string, digest: string): string | undefined {
    return this.dir ? join(this.dir, encodeURIComponent(registry), digestHex(digest)) : undefined;
  }

  /** Repositories (newest first) of `registry` that held `digest`. */
  async find(registry: string, digest: string): Promise<string[]> {
    const key = `${registry}@${digest}`;
    const known = this.memory.get(key) ?? [];
    const file = this.file(registry, digest);
    const stored = file ? ((await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean)) : [];
    return [...new Set([...known, ...stored.reverse()])].slice(0, MAX_CANDIDATES);
  }

  async remember(registry: string, repository: string, digest: string): Promise<void> {
    const key = `${registry}@${digest}`;
    const known = this.memory.get(key) ?? [];
    if (known.includes(repository)) return;
    this.memory.set(key, [repository, ...known]);
    const file = this.file(registry, digest);
    if (!file) return;
    await mkdir(join(this.dir as string, encodeURIComponent(registry)), { recursive: true });
    await appendFile(file, `${repository}\n`).catch(() => undefined);
  }
}
