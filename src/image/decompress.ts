// zstd decompression that reads every frame. A zstd stream is any number of frames, data and
// skippable, one after another (RFC 8878 §3.1); layers made by podman/buildah as zstd:chunked are
// many frames plus a skippable one. Node's decoder stops after the first frame and drops the rest
// without an error (nodejs/node#64741), which would lose files from a layer without a word. So the
// frames are found here by walking their headers (no decoding), and each goes to a fresh decoder.
import { Duplex, pipeline, Readable } from 'node:stream';
import { createZstdDecompress } from 'node:zlib';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const CHUNK_SIZE = 256 * 1024;

/** A Duplex (for `.pipe()`) that decompresses every zstd frame written to it, in order. */
export function createZstdFramesDecompress(): Duplex {
  return Duplex.from(decompressZstdFrames);
}

/** A pipeline stage: zstd frames in (any number, skippable ones skipped), their content out. */
export async function* decompressZstdFrames(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer, void, undefined> {
  const reader = new ByteReader(input[Symbol.asyncIterator]());
  try {
    let frames = 0;
    for (;;) {
      const magic = await reader.exactly(4, frames > 0);
      if (magic === undefined) return;
      frames += 1;
      const value = magic.readUInt32LE(0);
      if ((value & SKIPPABLE_MASK) === SKIPPABLE_MAGIC) {
        const size = (await reader.exactly(4)).readUInt32LE(0);
        for await (const skipped of reader.pass(size)) void skipped;
        continue;
      }
      if (value !== ZSTD_MAGIC) throw new Error(`zstd: no frame at byte ${reader.offset - 4} (magic 0x${value.toString(16)})`);
      const decoder = createZstdDecompress({ chunkSize: CHUNK_SIZE });
      // The frame's bytes, exactly: the next frame stays in the reader for the next decoder.
      pipeline(Readable.from(frameBytes(reader, magic)), decoder, () => undefined);
      for await (const chunk of decoder) yield chunk as Buffer;
    }
  } finally {
    await reader.close();
  }
}

/** One data frame's bytes from its magic to its end, found from the header and block headers. */
async function* frameBytes(reader: ByteReader, magic: Buffer): AsyncGenerator<Buffer> {
  yield magic;
  const descriptor = await reader.exactly(1);
  yield descriptor;
  const d = descriptor[0] as number;
  const singleSegment = (d & 0x20) !== 0;
  const checksum = (d & 0x04) !== 0;
  const dictionaryIdBytes = [0, 1, 2, 4][d & 0x03] as number;
  const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][d >> 6] as number;
  const rest = (singleSegment ? 0 : 1) + dictionaryIdBytes + contentSizeBytes;
  if (rest > 0) yield await reader.exactly(rest);
  for (;;) {
    const header = await reader.exactly(3);
    yield header;
    const value = (header[0] as number) | ((header[1] as number) << 8) | ((header[2] as number) << 16);
    const type = (value >> 1) & 0x03;
    if (type === 3) throw new Error(`zstd: reserved block type at byte ${reader.offset - 3}`);
    // Raw and compressed blocks carry Block_Size bytes; an RLE block carries the one byte repeated.
    yield* reader.pass(type === 1 ? 1 : value >>> 3);
    if ((value & 0x01) !== 0) break;
  }
  if (checksum) yield await reader.exactly(4);
}

/** Reads exact byte counts from an iterator of chunks, keeping what is left for the next read. */
class ByteReader {
  private readonly source: AsyncIterator<Buffer>;
  private leftover: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes handed out so far, for error messages. */
  offset = 0;

  constructor(source: AsyncIterator<Buffer>) {
    this.source = source;
  }

  /** `n` bytes; at a clean end of input (no byte of them read) undefined when `endOk`, else an error. */
  async exactly(n: number, endOk: boolean): Promise<Buffer | undefined>;
  async exactly(n: number): Promise<Buffer>;
  async exactly(n: number, endOk = false): Promise<Buffer | undefined> {
    while (this.leftover.length < n) {
      const next = await this.pull();
      if (next === undefined) {
        if (endOk && this.leftover.length === 0) return undefined;
        throw new Error(`zstd: the data ends inside a frame, at byte ${this.offset + this.leftover.length}`);
      }
      this.leftover = this.leftover.length === 0 ? next : Buffer.concat([this.leftover, next]);
    }
    const out = this.leftover.subarray(0, n);
    this.leftover = this.leftover.subarray(n);
    this.offset += n;
    return out;
  }

  /** `n` bytes as they arrive, without gathering them into one buffer. */
  async *pass(n: number): AsyncGenerator<Buffer> {
    let remaining = n;
    while (remaining > 0) {
      if (this.leftover.length === 0) {
        const next = await this.pull();
        if (next === undefined) throw new Error(`zstd: the data ends inside a frame, at byte ${this.offset}`);
        this.leftover = next;
      }
      const take = Math.min(remaining, this.leftover.length);
      const out = this.leftover.subarray(0, take);
      this.leftover = this.leftover.subarray(take);
      this.offset += take;
      remaining -= take;
      yield out;
    }
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.source.return?.();
    }
  }

  private async pull(): Promise<Buffer | undefined> {
    if (this.ended) return undefined;
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return undefined;
    }
    return Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
  }
}
