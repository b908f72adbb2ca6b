// zstd decompression of every frame: a layer of several frames (zstd:chunked, or frames simply
// concatenated) unpacks whole, where Node's own decoder silently stops after the first; skippable
// frames are skipped; RLE, raw and compressed blocks and checksums are walked right whatever the
// input's chunking; a truncated or trailing-garbage stream is an error, not a shorter tar.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { zstdCompressSync, zstdDecompressSync, constants } from 'node:zlib';
import * as tar from 'tar-stream';
import { applyLayer } from '../../src/deploy/layer-apply.js';
import { compressLayer } from '../../src/image/compress.js';
import { decompressZstdFrames } from '../../src/image/decompress.js';
import { readLayer } from '../../src/image/layer.js';
import { writeLayer } from '../../src/image/layer-writer.js';
import { OCI_LAYER_ZSTD } from '../../src/image/media-types.js';
import { makeTempDir } from '../support/tmp.js';

function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function decompress(chunks: Iterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    async function* () {
      yield* chunks;
    },
    decompressZstdFrames,
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    },
  );
  return Buffer.concat(out);
}

function zstdCli(data: Buffer, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('zstd', args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 30_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stdin?.end(data);
  });
}

function skippable(payload: Buffer, nibble = 0xa): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a50 + nibble, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('zstd frames', () => {
  const text = Buffer.from('package main\n\nfunc main() { println("hello") }\n'.repeat(5000));
  const zeros = Buffer.alloc(300_000); // RLE blocks
  const noise = pseudoRandom(200_000, 5); // raw blocks

  it('reads every frame of a concatenation, skipping skippable frames, however the input is chunked', async () => {
    const parts = [text, zeros, Buffer.alloc(0), noise, text.subarray(0, 1)];
    const frames = [
      zstdCompressSync(parts[0]!),
      await zstdCli(parts[1]!, ['-c', '--check']), // content checksum, content size
      zstdCompressSync(parts[2]!),
      skippable(Buffer.from('a zstd:chunked manifest would sit here')),
      await zstdCli(parts[3]!, ['-c', '--no-check', '-19']),
      skippable(Buffer.alloc(0), 0xf),
      zstdCompressSync(parts[4]!, { params: { [constants.ZSTD_c_checksumFlag]: 1 } }),
    ];
    const stream = Buffer.concat(frames);
    const expected = Buffer.concat(parts);
    assert.ok(!zstdDecompressSync(stream).equals(expected), "Node's own decoder stops short: the case this module exists for");
    assert.ok((await zstdCli(stream, ['-dc'])).equals(expected), 'the zstd CLI agrees on the content');
    for (const size of [stream.length, 64 * 1024, 4096, 7, 1]) {
      const out = await decompress(size === 1 ? [...chunksOf(stream.subarray(0, 20_000), 1), stream.subarray(20_000)] : chunksOf(stream, size));
      assert.ok(out.equals(expected), `chunks of ${size}`);
    }
  });

  it('reads the one frame compressLayer writes', async () => {
    const data = Buffer.concat([text, noise, zeros, text]);
    const out: Buffer[] = [];
    await pipeline(Readable.from([data]), compressLayer('zstd'), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    });
    assert.ok((await decompress(chunksOf(Buffer.concat(out), 10_000))).equals(data));
  });

  it('rejects a stream cut inside a frame, and bytes after a frame that are no frame', async () => {
    const frame = zstdCompressSync(text);
    for (const cut of [frame.length - 1, 5, frame.length - 4]) {
      await assert.rejects(decompress([frame.subarray(0, cut)]), /ends inside a frame|unexpected end/i, `cut at ${cut}`);
    }
    await assert.rejects(decompress([frame, Buffer.from('trailing junk')]), /no frame at byte \d+/);
    await assert.rejects(decompress([skippable(Buffer.alloc(10)).subarray(0, 12)]), /ends inside a frame/);
  });

  it('lets the local target unpack every file of a layer split into frames at file boundaries', async (t) => {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (chunk: unknown) => {
      chunks.push(chunk as Buffer);
    });
    const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
    pack.entry({ name: 'a.txt', mode: 0o644 }, 'first');
    pack.entry({ name: 'b.txt', mode: 0o644 }, 'second');
    pack.finalize();
    await ended;
    const layerTar = Buffer.concat(chunks);
    // As zstd:chunked does: one frame per file (a's 512-byte header + 512-byte data block), then the rest.
    const layer = Buffer.concat([zstdCompressSync(layerTar.subarray(0, 1024)), zstdCompressSync(layerTar.subarray(1024)), skippable(Buffer.from('{}'))]);
    const root = await makeTempDir('zstd-frames-apply', t);
    await applyLayer(layer, root);
    assert.deepEqual((await readdir(root)).sort(), ['a.txt', 'b.txt']);
    assert.equal(await readFile(join(root, 'b.txt'), 'utf8'), 'second');
  });

  it('lets the local target unpack the zstd layers tsko writes', async (t) => {
    const binary = Buffer.concat([text, noise]);
    const layer = await writeLayer(
      [
        { name: 'ko-app', type: 'directory', mode: 0o555 },
        { name: 'ko-app/app', type: 'file', mode: 0o555, content: binary },
      ],
      OCI_LAYER_ZSTD,
      'zstd',
    );
    const root = await makeTempDir('zstd-layer-apply', t);
    await applyLayer(await readLayer(layer), root);
    assert.ok((await readFile(join(root, 'ko-app/app'))).equals(binary));
  });
});
