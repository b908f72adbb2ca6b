// Writes an image as a `docker save` tarball (`--tarball`), loadable with `docker load`:
// manifest.json, the config, and each compressed layer, in a deterministic order.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { replaceFileAtomic } from '../atomic-file.js';
import { digestHex } from './digest.js';
import { readLayer } from './layer.js';
import type { Image } from './types.js';

export async function writeTarball(path: string, image: Image, options: { repoTags: string[]; signal?: AbortSignal }): Promise<void> {
  await replaceFileAtomic(path, (temp) => writeTarballTo(temp, image, options));
}

async function writeTarballTo(file: string, image: Image, options: { repoTags: string[]; signal?: AbortSignal }): Promise<void> {
  const pack = tar.pack();
  const written = pipeline(pack as unknown as AsyncIterable<Buffer>, createWriteStream(file));
  const add = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) =>
      pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (err) => (err ? reject(err) : resolve())),
    );
  try {
    const configName = `sha256:${digestHex(image.configDigest)}`;
    const layerNames = image.layers.map((layer) => `${digestHex(layer.digest)}.tar.gz`);
    const manifest = [{ Config: configName, RepoTags: options.repoTags, Layers: layerNames }];
    await add('manifest.json', Buffer.from(JSON.stringify(manifest)));
    await add(configName, image.configBytes);
    for (const [i, layer] of image.layers.entries()) await add(layerNames[i] as string, await readLayer(layer, options.signal));
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
  await written;
}
