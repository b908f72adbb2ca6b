// Writes an image into an OCI image layout directory (`--oci-layout-path`): blobs by digest, the
// manifest listed in index.json under its tag (org.opencontainers.image.ref.name), appended to
// whatever the layout already holds; a multi-platform image is its children plus the index.
// Writers are separate from the image value, as in ggcr.
import { access, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { digestHex } from './digest.js';
import type { ImageIndex } from './index.js';
import { OCI_INDEX } from './media-types.js';
import { readLayer } from './layer.js';
import type { Descriptor, Image, IndexJson } from './types.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

export async function writeOciLayout(dir: string, image: Image, options: { tag?: string; signal?: AbortSignal }): Promise<void> {
  await writeImageBlobs(dir, image, options.signal);
  await addToIndexJson(dir, { mediaType: image.manifestMediaType, digest: image.manifestDigest, size: image.manifestBytes.length, platform: image.platform }, options.tag);
}

/** A multi-platform image: every child's blobs and manifest, then the index, listed under the tag. */
export async function writeOciLayoutIndex(dir: string, index: ImageIndex, options: { tag?: string; signal?: AbortSignal }): Promise<void> {
  for (const child of index.children) await writeImageBlobs(dir, child, options.signal);
  await writeFileAtomic(join(dir, 'blobs', 'sha256', digestHex(index.digest)), index.bytes);
  await addToIndexJson(dir, { mediaType: index.mediaType, digest: index.digest, size: index.bytes.length }, options.tag);
}

async function writeImageBlobs(dir: string, image: Image, signal: AbortSignal | undefined): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  await writeFileAtomic(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  for (const layer of image.layers) {
    const path = join(blobs, digestHex(layer.digest));
    if (await exists(path)) continue;
    await writeFileAtomic(path, await readLayer(layer, signal));
  }
  await writeFileAtomic(join(blobs, digestHex(image.configDigest)), image.configBytes);
  await writeFileAtomic(join(blobs, digestHex(image.manifestDigest)), image.manifestBytes);
}

async function addToIndexJson(dir: string, manifest: Descriptor, tag: string | undefined): Promise<void> {
  const indexPath = join(dir, 'index.json');
  const index: IndexJson = await readFile(indexPath, 'utf8')
    .then((text) => JSON.parse(text) as IndexJson)
    .catch(() => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
  const descriptor: Descriptor = { ...manifest, ...(tag ? { annotations: { [REF_NAME]: tag } } : {}) };
  // A tag names one manifest: a rebuild under the same tag replaces the old entry.
  index.manifests = index.manifests.filter((m) => (tag ? m.annotations?.[REF_NAME] !== tag : m.digest !== manifest.digest));
  index.manifests.push(descriptor);
  await writeFileAtomic(indexPath, JSON.stringify(index, null, 2) + '\n');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
