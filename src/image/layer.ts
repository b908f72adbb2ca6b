// Making and reading Layer values: a layer whose compressed bytes are in a file or in memory (the
// ones tsko writes), a layer whose bytes live in a registry (a base's, opened through whatever can fetch
// them), and reading any layer's bytes whole for the writers that need them at once.
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { abortError } from '../abort.js';
import type { Digest } from './digest.js';
import type { BlobOrigin, Layer } from './types.js';

export interface LayerDigests {
  digest: Digest;
  diffId: Digest;
  mediaType: string;
}

/** A layer whose compressed bytes are `data`. */
export function memoryLayer(digests: LayerDigests, data: Buffer): Layer {
  return {
    ...digests,
    size: data.length,
    // One chunk, the buffer itself: reading it back whole costs no copy.
    open: (signal) => (signal?.aborted ? Promise.reject(abortError(signal)) : Promise.resolve(Readable.from([data]))),
  };
}

/** Large reads: a layer file is read at the disk's pace, not in 64 KiB steps. */
const FILE_READ_BYTES = 1 << 20;

/** A layer whose compressed bytes are the file at `path`. */
export function fileLayer(digests: LayerDigests & { size: number }, path: string): Layer {
  return {
    ...digests,
    path,
    // Opened at once, so a file that is gone fails here rather than in the middle of a reader.
    open: async (signal) => {
      if (signal?.aborted) throw abortError(signal);
      const file = await open(path, 'r');
      return file.createReadStream({ highWaterMark: FILE_READ_BYTES, ...(signal ? { signal } : {}) });
    },
  };
}

/** A layer of `size` bytes in `origin`, opened by `fetch` (a verified blob download). */
export function remoteLayer(digests: LayerDigests & { size: number }, origin: BlobOrigin, fetch: (origin: BlobOrigin, digest: Digest, signal?: AbortSignal) => Promise<Readable>): Layer {
  return { ...digests, origin, open: (signal) => fetch(origin, digests.digest, signal) };
}

/** All of a layer's compressed bytes. */
export async function readLayer(layer: Pick<Layer, 'open'>, signal?: AbortSignal): Promise<Buffer> {
  const stream = await layer.open(signal);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}
