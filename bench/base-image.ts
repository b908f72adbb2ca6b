// Puts tsko's `builtin://static` base into a registry as an ordinary image, so ko (which can only
// pull a base from a registry) builds on the very same base layer and config tsko uses.
import { OCI_CONFIG, OCI_MANIFEST } from '../src/image/media-types.js';
import { builtinStaticBase } from '../src/image/builtin-base.js';
import { sha256 } from '../src/image/digest.js';
import { readLayer } from '../src/image/layer.js';
import type { Platform } from '../src/image/types.js';

/** Push the base to `registry` (host:port) as `repository`; returns a digest reference. */
export async function pushBuiltinBase(registry: string, repository: string, platform: Platform): Promise<string> {
  const base = await builtinStaticBase(platform);
  const configBytes = Buffer.from(JSON.stringify(base.config));
  const configDigest = sha256(configBytes);
  const layers = await Promise.all(
    base.layers.map(async (layer) => ({ descriptor: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, data: await readLayer(layer) })),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length },
      layers: layers.map((layer) => layer.descriptor),
    }),
  );
  const origin = `http://${registry}`;
  for (const blob of [...layers.map((layer) => ({ digest: layer.descriptor.digest, data: layer.data })), { digest: configDigest, data: configBytes }]) {
    await uploadBlob(origin, repository, blob.digest, blob.data);
  }
  const put = await fetch(`${origin}/v2/${repository}/manifests/latest`, {
    method: 'PUT',
    headers: { 'content-type': OCI_MANIFEST },
    body: manifest,
    signal: AbortSignal.timeout(30_000),
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`PUT manifest for the ko base: HTTP ${put.status}`);
  return `${registry}/${repository}@${sha256(manifest)}`;
}

/** A monolithic upload: POST for a session, PUT the bytes with the digest. */
async function uploadBlob(origin: string, repository: string, digest: string, data: Buffer): Promise<void> {
  const post = await fetch(`${origin}/v2/${repository}/blobs/uploads/`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
  await post.arrayBuffer();
  const location = post.headers.get('location');
  if (post.status !== 202 || !location) throw new Error(`POST blob upload for the ko base: HTTP ${post.status}`);
  const url = new URL(location, origin);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: data,
    signal: AbortSignal.timeout(30_000),
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`PUT blob ${digest} for the ko base: HTTP ${put.status}`);
}
