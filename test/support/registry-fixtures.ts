// Small images with random blobs for registry client tests, and a helper that pushes one the way
// the publisher does (HEAD-skip each blob, then the manifest).
import { createHash, randomBytes } from 'node:crypto';
import { DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST } from '../../src/image/media-types.js';
import type { RegistryClient } from '../../src/registry/client.js';
import type { Repository } from '../../src/registry/reference.js';

export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface TestImage {
  config: Buffer;
  layer: Buffer;
  manifest: Buffer;
  mediaType: string;
}

/** A small image whose blobs are random, so every call yields new digests. */
export function makeImage(family: 'oci' | 'docker' = 'oci'): TestImage {
  const layer = randomBytes(2048);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(layer)] }, nonce: randomBytes(8).toString('hex') }));
  const mediaType = family === 'oci' ? OCI_MANIFEST : DOCKER_MANIFEST;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: family === 'oci' ? OCI_CONFIG : DOCKER_CONFIG, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: family === 'oci' ? OCI_LAYER_GZIP : DOCKER_LAYER_GZIP, digest: digestOf(layer), size: layer.length }],
    }),
  );
  return { config, layer, manifest, mediaType };
}

export async function pushImage(client: RegistryClient, repo: Repository, image: TestImage, tag: string): Promise<string> {
  for (const blob of [image.layer, image.config]) {
    if (!(await client.headBlob(repo, digestOf(blob)))) await client.uploadBlob(repo, digestOf(blob), blob.length, () => blob);
  }
  return client.putManifest({ ...repo, tag }, image.manifest, image.mediaType);
}

