// Layer compression as one stage of a stream pipeline: bytes of a tar in, compressed bytes out.
//
// gzip runs on every core: the input is cut into fixed-size blocks, each compressed on its own by
// zlib on libuv's thread pool, and the gzip members are yielded in input order. Concatenated
// members are one valid gzip stream (RFC 1952 §2.2), read whole by Go's gzip.Reader (multistream
// is its default, so containerd, Docker and skopeo), umoci, GNU gzip and Node's gunzip. Blocks
// are cut at fixed offsets, never where the input's chunks happen to end, so the same tar always
// gives the same bytes (and digest), however it was read. Each block starts without the previous
// one's 32 KiB window; at 1 MiB blocks that costs ~0.1% in size (measured on a 57 MB Go binary).
//
// zstd is one frame from Node's streaming encoder, on one thread. Several frames compressed in
// parallel would also be valid zstd, but Node's own decoder stops after the first frame
// (nodejs/node#64741), so a Node-based reader (tsko's local target, for one) would silently lose
// the rest; one frame is what every decoder reads.
import { availableParallelism } from 'node:os';
import { addAbortSignal, pipeline, Readable } from 'node:stream';
import { constants, createZstdCompress, gzip, type ZlibOptions } from 'node:zlib';
import { abortError, throwIfAborted } from '../abort.js';
import type { MemberReuse } from './member-reuse.js';

export type Compression = 'gzip' | 'zstd';

export interface CompressOptions {
  /** gzip 1–9 (default 1, BestSpeed, as ko); zstd 1–19 (default 3, zstd's own default). */
  level?: number;
  /** gzip: bytes per independently compressed member (default 1 MiB). */
  blockSize?: number;
  /**
   * gzip: members compressing or waiting at once (default 2 × the cores, at most 8: libuv's
   * default pool runs 4 at a time). Bounds memory to about 2 × this × blockSize.
   */
  concurrency?: number;
  signal?: AbortSignal;
  /** gzip: members of a previous version of the layer to copy for unchanged blocks (member-reuse.ts). */
  members?: MemberReuse;
}

/** A pipeline stage: `pipeline(source, compressLayer('gzip'), sink)` passes its own signal too. */
export type CompressStage = (input: AsyncIterable<Buffer>, options?: { signal?: AbortSignal }) => AsyncGenerator<Buffer, void, undefined>;

export const DEFAULT_GZIP_BLOCK_SIZE = 1024 * 1024;
const DEFAULT_GZIP_LEVEL = constants.Z_BEST_SPEED;
/** Output chunks of each gzip member (see gzipStage). */
const GZIP_CHUNK_SIZE = 256 * 1024;
const DEFAULT_ZSTD_LEVEL = 3;
/** Output chunks of the zstd encoder: fewer, larger chunks to hash and upload than zlib's 16 KiB. */
const ZSTD_CHUNK_SIZE = 128 * 1024;

export function compressLayer(compression: Compression, options: CompressOptions = {}): CompressStage {
  if (compression === 'zstd') return zstdStage(options);
  return gzipStage(options);
}

function gzipStage(options: CompressOptions): CompressStage {
  const blockSize = options.blockSize ?? DEFAULT_GZIP_BLOCK_SIZE;
  const concurrency = options.concurrency ?? Math.min(8, 2 * availableParallelism());
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`gzip block size must be a positive whole number, got ${blockSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`gzip concurrency must be a positive whole number, got ${concurrency}`);
  // zlib's 16 KiB output chunks make each 1 MiB member ~30 round trips between the thread pool and
  // the main thread (a CPU profile of the remote-path daemon: ~130 ms of main thread per 55 MB save
  // in zlib's processCallback); 256 KiB chunks make it a few, for 256 KiB per member in flight.
  const zlibOptions: ZlibOptions = { level: options.level ?? DEFAULT_GZIP_LEVEL, chunkSize: GZIP_CHUNK_SIZE };

  return async function* parallelGzip(input, stageOptions) {
    const signals = [options.signal, stageOptions?.signal].filter((s): s is AbortSignal => s !== undefined);
    const checkAbort = (): void => {
      for (const signal of signals) throwIfAborted(signal);
    };
    // Blocks in input order; `value` is set once a block's member is ready.
    const queue: { done: Promise<Buffer>; value?: Buffer; key?: string }[] = [];
    let submitted = 0;
    const compress = (block: Buffer) => new Promise<Buffer>((resolve, reject) => gzip(block, zlibOptions, (err, out) => (err ? reject(err) : resolve(out))));
    const submit = (block: Buffer): void => {
      const reuse = options.members?.lookup(block);
      const entry: { done: Promise<Buffer>; value?: Buffer; key?: string } = {
        done: reuse ? reuse.member.then((member) => member ?? compress(block)) : compress(block),
        ...(reuse ? { key: reuse.key } : {}),
      };
      // Settles while we wait on an earlier block: observed here, so it is never "unhandled".
      entry.done.then(
        (out) => (entry.value = out),
        () => undefined,
      );
      queue.push(entry);
      submitted += 1;
    };

    /** The oldest block's member, once ready; told to the reuse index in output order. */
    const next = async (): Promise<Buffer> => {
      const entry = queue.shift() as { done: Promise<Buffer>; key?: string };
      const out = await entry.done;
      checkAbort();
      if (entry.key !== undefined) options.members?.emitted(entry.key, out.length);
      return out;
    };

    let block = Buffer.allocUnsafe(blockSize);
    let filled = 0;
    for await (const chunk of input) {
      checkAbort();
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(blockSize - filled, chunk.length - offset);
        chunk.copy(block, filled, offset, offset + n);
        filled += n;
        offset += n;
        if (filled < blockSize) continue;
        submit(block);
        block = Buffer.allocUnsafe(blockSize);
        filled = 0;
        // Hand on whatever is ready (the upload and digest go on while the pool compresses), and
        // wait only when the pool has enough to do.
        while (queue.length > 0 && (queue[0]?.value !== undefined || queue.length >= concurrency)) {
          yield await next();
        }
      }
    }
    // The tail, or the one empty member of an empty input (a gzip stream has at least one).
    if (filled > 0 || submitted === 0) submit(block.subarray(0, filled));
    while (queue.length > 0) {
      yield await next();
    }
  };
}

function zstdStage(options: CompressOptions): CompressStage {
  const level = options.level ?? DEFAULT_ZSTD_LEVEL;
  return async function* zstd(input, stageOptions) {
    const encoder = createZstdCompress({
      chunkSize: ZSTD_CHUNK_SIZE,
      params: {
        [constants.ZSTD_c_compressionLevel]: level,
        // As the zstd CLI does: a decoder checks the content it produced.
        [constants.ZSTD_c_checksumFlag]: 1,
      },
    });
    for (const signal of [options.signal, stageOptions?.signal]) {
      if (signal) addAbortSignal(signal, encoder);
    }
    // pipeline() destroys the encoder with the input's error, and the input when the encoder is
    // destroyed (the consumer stopped, or a signal aborted).
    const source = Readable.from(input, { objectMode: false });
    pipeline(source, encoder, () => undefined);
    try {
      for await (const chunk of encoder) yield chunk as Buffer;
    } catch (err) {
      for (const signal of [options.signal, stageOptions?.signal]) {
        if (signal?.aborted) throw abortError(signal);
      }
      throw err;
    } finally {
      encoder.destroy();
    }
  };
}
