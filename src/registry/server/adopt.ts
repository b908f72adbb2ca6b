// The embedded registry's shortcut for a client in its own process: a blob whose bytes are already
// a file on this machine (a layer tsko just wrote) is taken into the store by hard link — fsynced,
// then renamed into its content address, exactly as an HTTP upload ends — instead of streaming the
// same bytes through a socket back into this process. The digest is the one the writer computed
// from these very bytes as it wrote them (the same trust an upload's running hash gets); the size
// is checked, and a link is used only for a file no one rewrites (tsko's layer files are 0444).
// Small blobs in memory (an image config) are hashed here and written like a manifest's bytes.
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, link, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError } from './errors.js';
import { fsyncFile, renameDurable } from './fsutil.js';
import { storeBytes } from './ingest.js';
import { isRepositoryName, parseDigest } from './names.js';
import type { RegistryStore } from './store.js';

/** A blob's bytes on this machine: a file (its size as the writer counted it), or bytes in memory. */
export type BlobSource = { path: string; size: number } | { bytes: Uint8Array };

/** Stores the source as blob `digest` of `repository`; 'existing' when the store had it already. */
export async function adoptBlob(store: RegistryStore, repository: string, digest: string, source: BlobSource): Promise<'stored' | 'existing'> {
  const parsed = parseDigest(digest);
  if (!parsed || !isRepositoryName(repository)) throw new RegistryError(400, 'NAME_INVALID', `cannot store ${repository}@${digest}: invalid name or digest`);
  if ('bytes' in source) {
    const actual = `${parsed.algorithm}:${createHash(parsed.algorithm).update(source.bytes).digest('hex')}`;
    if (actual !== parsed.digest) throw new RegistryError(400, 'DIGEST_INVALID', `bytes for ${digest} hash to ${actual}`);
    const existing = Boolean(await store.statBlob(parsed));
    await storeBytes(store, parsed, source.bytes);
    await store.linkBlob(repository, parsed);
    return existing ? 'existing' : 'stored';
  }
  const { path: file, size } = source;
  const actual = (await stat(file)).size;
  if (actual !== size) throw new RegistryError(400, 'SIZE_INVALID', `${file} holds ${actual} bytes, not the ${size} of ${digest}`);
  const existing = Boolean(await store.statBlob(parsed));
  if (existing) {
    // Refreshed, so gc's grace period covers this push as it would an upload of the same bytes.
    await store.touchBlob(parsed);
  } else {
    const temp = join(store.tmpDir, `adopt-${randomBytes(8).toString('hex')}`);
    try {
      await link(file, temp).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EXDEV' && err.code !== 'EPERM') throw err;
        await copyFile(file, temp);
      });
      await fsyncFile(temp);
      await renameDurable(temp, store.blobPath(parsed));
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  }
  await store.linkBlob(repository, parsed);
  return existing ? 'existing' : 'stored';
}
