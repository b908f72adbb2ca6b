// Writes one image layer in a single pass: tar entries (file contents streamed from disk, never
// read whole) → tar-stream → the compressor (compress.ts: gzip on every core, or zstd) → a file in
// the pipeline's LayerFiles (or memory, for the small layers made without one), hashing the
// uncompressed bytes (diff_id) and the compressed bytes (digest) on the way. Nothing is read back:
// the file is what a push uploads (or the embedded registry links), and a retried upload opens it
// again.
//
// `compression: 'none'` writes a plain tar layer (digest = diff_id). gzip costs ~130 ms for an
// 8 MB Go binary on a small machine, a third of a warm dev iteration; when the registry is on
// this machine there is no network to save bytes on, so the dev loop skips it.
import { createHash } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { compressLayer } from './compress.js';
import type { Digest } from './digest.js';
import { fileLayer, memoryLayer } from './layer.js';
import type { LayerFiles } from './layer-files.js';
import type { MemberReuse } from './member-reuse.js';
import type { LayerCompression } from './media-types.js';
import type { Layer } from './types.js';

/** How much of a file is streamed into the tar per read. */
const READ_BYTES = 1 << 20;
/** Writes to the layer file in flight at once: hashing the next chunk overlaps writing this one. */
const WRITES_IN_FLIGHT = 4;
/**
 * Read buffers one uncompressed file layer cycles through: the writes in flight, the chunk the tar
 * stream holds and the one being read, so reading never waits for a buffer to come back.
 */
const READ_BUFFERS = WRITES_IN_FLIGHT + 3;

export interface TarEntry {
  /** Path inside the image, without a leading slash (`ko-app/hello`). */
  name: string;
  type: 'directory' | 'file';
  mode: number;
  /** Seconds since the epoch; fixed for reproducible layers. */
  mtime?: number;
  uid?: number;
  gid?: number;
  /** File content: bytes in memory, or a file on disk of a known size to stream in. */
  content?: Buffer | { path: string; size: number };
}

export type { LayerCompression };

/**
 * Sees a layer's compressed bytes as they are made (a streamed upload) and is told how the layer
 * ended. It never fails the layer: a `write` may only make the writer wait (backpressure).
 */
export interface LayerTap {
  write(chunk: Buffer): Promise<void> | undefined;
  end(digest: Digest, size: number): void;
  fail(err: unknown): void;
}

/**
 * Writes a layer of `entries`. With `into`, its bytes go to a file there (Layer.path); without,
 * to memory (the builtin base's and test fixtures' small layers).
 */
export async function writeLayer(
  entries: Iterable<TarEntry> | AsyncIterable<TarEntry>,
  mediaType: string,
  compression: LayerCompression = 'gzip',
  into?: LayerFiles,
  tap?: LayerTap,
  members?: MemberReuse,
): Promise<Layer> {
  const pack = tar.pack();
  const diffHash = createHash('sha256');
  const digestHash = createHash('sha256');
  const memory = into ? undefined : memorySink();
  // An uncompressed layer into a file (the dev loop's local target) reuses a few read buffers: a
  // fresh 1 MB Buffer per read made ~55 MB of garbage per save of a 55 MB binary, which V8 frees
  // only at its next GC (external memory may grow by 64 MB before it collects) and malloc then
  // keeps, and was most of the daemon's RSS swing between saves. Buffers are taken back once their
  // bytes are on disk; a compressor may hold its input longer, so compressed layers read fresh ones.
  const buffers = into && compression === 'none' ? new ReadBuffers(READ_BYTES, READ_BUFFERS) : undefined;
  const file = into ? await fileSink(into, buffers) : undefined;
  const sink: LayerSink = (memory ?? file) as LayerSink;

  const source = pack as unknown as AsyncIterable<Buffer>;
  async function* hashUncompressed(input: AsyncIterable<Buffer>) {
    for await (const chunk of input) {
      diffHash.update(chunk);
      yield chunk;
    }
  }
  let size = 0;
  async function collect(input: AsyncIterable<Buffer>) {
    for await (const chunk of input) {
      digestHash.update(chunk);
      size += chunk.length;
      await sink.write(chunk);
      const wait = tap?.write(chunk);
      if (wait) await wait;
    }
  }
  const consumed =
    compression !== 'none'
      ? pipeline(source, hashUncompressed, compressLayer(compression, members ? { members } : {}), collect)
      : pipeline(source, collect);
  // The pack is read as an async iterable, so nothing listens for its 'error' (an entry that
  // failed destroys it with that error): without a listener that would be an uncaught exception.
  // The error itself is thrown by the entry below; `consumed` is awaited there too, perhaps after
  // it rejected.
  pack.on('error', () => undefined);
  consumed.catch(() => undefined);

  try {
    for await (const entry of entries) await addEntry(pack, entry, buffers);
    pack.finalize();
    await consumed;
  } catch (err) {
    pack.destroy(err as Error);
    await consumed.catch(() => undefined);
    await sink.abandon();
    tap?.fail(err);
    throw err;
  }

  const digest = `sha256:${digestHash.digest('hex')}` as Digest;
  tap?.end(digest, size);
  const diffId = compression !== 'none' ? (`sha256:${diffHash.digest('hex')}` as Digest) : digest;
  const digests = { digest, diffId, mediaType };
  if (memory) return memoryLayer(digests, memory.bytes());
  return fileLayer({ ...digests, size }, await (file as FileSink).keep(digest));
}

/** Where a layer's compressed bytes go as they are made. */
interface LayerSink {
  write(chunk: Buffer): Promise<void>;
  abandon(): Promise<void>;
}

interface MemorySink extends LayerSink {
  bytes(): Buffer;
}

interface FileSink extends LayerSink {
  /** All written: the file under its name by digest. */
  keep(digest: Digest): Promise<string>;
}

function memorySink(): MemorySink {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    write: (chunk) => {
      chunks.push(chunk);
      size += chunk.length;
      return Promise.resolve();
    },
    bytes: () => Buffer.concat(chunks, size),
    abandon: () => Promise.resolve(),
  };
}

async function fileSink(into: LayerFiles, buffers?: ReadBuffers): Promise<FileSink> {
  const temp = await into.tempPath();
  const handle = await open(temp, 'wx', 0o444);
  let position = 0;
  const pending: Promise<void>[] = [];
  let failed: unknown;
  const close = async () => {
    await Promise.allSettled(pending);
    await handle.close().catch(() => undefined);
  };
  return {
    async write(chunk) {
      if (failed) throw failed;
      const write = writeAll(handle, chunk, position)
        .catch((err: unknown) => {
          failed ??= err;
        })
        .finally(() => buffers?.giveBack(chunk));
      position += chunk.length;
      pending.push(write);
      if (pending.length >= WRITES_IN_FLIGHT) await pending.shift();
      if (failed) throw failed;
    },
    async keep(digest) {
      await close();
      if (failed) throw failed;
      return into.keep(temp, digest.slice('sha256:'.length));
    },
    async abandon() {
      await close();
      await unlink(temp).catch(() => undefined);
    },
  };
}

/** pwrite until all of `data` is written (a nearly full disk writes part and says so only in the count). */
async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * A fixed set of equal buffers to read into: take one (waiting while all are out), give it back
 * (or any chunk cut from it) when its bytes are written. Chunks from elsewhere (tar headers,
 * padding) are not its and are ignored.
 */
class ReadBuffers {
  private readonly idle: Buffer[] = [];
  private readonly waiting: Array<(buffer: Buffer) => void> = [];
  /** Each buffer by its memory, so a subarray of it is recognised. */
  private readonly owned = new Map<ArrayBufferLike, Buffer>();

  constructor(
    private readonly bytes: number,
    private readonly count: number,
  ) {}

  take(): Promise<Buffer> {
    const idle = this.idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.owned.size < this.count) {
      // Not from Node's shared pool: the buffer must own its memory to be recognised and reused.
      const buffer = Buffer.allocUnsafeSlow(this.bytes);
      this.owned.set(buffer.buffer, buffer);
      return Promise.resolve(buffer);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  giveBack(chunk: Buffer): void {
    const buffer = this.owned.get(chunk.buffer);
    if (!buffer) return;
    const next = this.waiting.shift();
    if (next) next(buffer);
    else this.idle.push(buffer);
  }
}

async function addEntry(pack: tar.Pack, entry: TarEntry, buffers?: ReadBuffers): Promise<void> {
  const header = {
    name: entry.type === 'directory' ? entry.name.replace(/\/?$/, '/') : entry.name,
    type: entry.type,
    size: 0,
    mode: entry.mode,
    mtime: new Date((entry.mtime ?? 0) * 1000),
    uid: entry.uid ?? 0,
    gid: entry.gid ?? 0,
    uname: '',
    gname: '',
  };
  if (entry.type === 'directory' || entry.content === undefined || Buffer.isBuffer(entry.content)) {
    const data = entry.type === 'directory' ? undefined : (entry.content as Buffer | undefined) ?? Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (data === undefined) pack.entry(header, done);
      else pack.entry({ ...header, size: data.length }, data, done);
    });
    return;
  }
  // A file on disk is streamed in: a 60 MB binary never sits in memory. tar needs its size up
  // front; a file that changed size meanwhile fails the entry ("size mismatch") instead of
  // writing a corrupt tar.
  const { path, size } = entry.content;
  const file = await open(path, 'r');
  try {
    let settle!: { resolve: () => void; reject: (err: Error) => void };
    const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const sink = pack.entry({ ...header, size }, (err) => (err ? settle.reject(err) : settle.resolve()));
    // The entry's error reaches `finished` through the callback; the sink emits it too, and an
    // 'error' with no listener would be an uncaught exception (a crashed daemon) for a bad file.
    sink.on('error', () => undefined);
    // It may reject while a read is in progress, before anything awaits it: handled here, thrown below.
    finished.catch(() => undefined);
    const drained = () => Promise.race([new Promise<void>((resolve) => sink.once('drain', () => resolve())), finished]);
    if (buffers) {
      // Read until the end of the file, as the stream below does, so a file that grew since its
      // size was taken fails the entry the same way.
      for (let position = 0; ; ) {
        const buffer = await Promise.race([buffers.take(), finished.then(() => undefined)]);
        if (!buffer) break;
        const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) {
          buffers.giveBack(buffer);
          break;
        }
        position += bytesRead;
        if (!sink.write(buffer.subarray(0, bytesRead))) await drained();
      }
      sink.end(undefined);
      await finished;
      return;
    }
    for await (const chunk of file.createReadStream({ highWaterMark: READ_BYTES, autoClose: false }) as AsyncIterable<Buffer>) {
      // A refused entry (the size mismatch) rejects `finished` instead of ever draining.
      if (!sink.write(chunk)) await drained();
    }
    sink.end(undefined);
    await finished;
  } finally {
    await file.close();
  }
}
