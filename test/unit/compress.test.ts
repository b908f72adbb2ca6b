// Layer compression: parallel gzip gives exactly the members of its fixed-size blocks, in order,
// whatever the input's chunking; every reader here (Node's gunzip, Go's compress/gzip, GNU gzip)
// reads them as one stream; zstd is one checksummed frame the zstd CLI and Node read whole;
// input errors and aborts end the stage and release the input.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { constants, gunzipSync, gzipSync, zstdDecompressSync } from 'node:zlib';
import { compressLayer, DEFAULT_GZIP_BLOCK_SIZE, type Compression, type CompressOptions } from '../../src/image/compress.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { isAbortError, TskoError } from '../../src/errors.js';
import { appLayerFormat, DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD } from '../../src/image/media-types.js';
import { writeLayer } from '../../src/image/layer-writer.js';
import { appendAppLayers, createdFromEpoch } from '../../src/image/assemble.js';
import { builtinStaticBase } from '../../src/image/builtin-base.js';
import { readLayer } from '../../src/image/layer.js';
import { goCacheDir } from '../support/go-env.js';
import { makeTempDir, withTempDir } from '../support/tmp.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Deterministic bytes that compress like a binary does, partly: text runs between random runs. */
function sample(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    // Every other 4 KiB is a repeating pattern; the rest pseudo-random.
    out[i] = (i >> 12) % 2 === 0 ? (x >>> 24) & 0xff : 'tsko layer '.charCodeAt(i % 11);
  }
  return out;
}

function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function compress(compression: Compression, input: Iterable<Buffer> | AsyncIterable<Buffer>, options?: CompressOptions): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    async function* () {
      yield* input;
    },
    compressLayer(compression, options),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    },
  );
  return Buffer.concat(out);
}

/** What the parallel gzip must produce: each fixed-size block gzipped alone at BestSpeed, in order. */
function expectedMembers(data: Buffer, blockSize: number): Buffer {
  if (data.length === 0) return gzipSync(data, { level: 1 });
  return Buffer.concat([...chunksOf(data, blockSize)].map((block) => gzipSync(block, { level: 1 })));
}

/** Runs a tool with `input` on stdin; resolves to its stdout. */
function run(file: string, args: string[], options: { cwd?: string; input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { cwd: options.cwd, env: options.env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
    child.stdin?.end(options.input ?? Buffer.alloc(0));
  });
}

const goReader = `package main

import (
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

// Reads a gzip stream the way containerd and Docker do (gzip.Reader, multistream by default)
// and prints the sha256 and length of what it holds.
func main() {
	r, err := gzip.NewReader(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%x %d\\n", h.Sum(nil), n)
}
`;

describe('parallel gzip', () => {
  const blockSize = 64 * 1024;

  it('writes one BestSpeed member per fixed-size block, in order: empty, 1 byte, one block, one block + 1, many', async () => {
    for (const size of [0, 1, blockSize, blockSize + 1, 10 * blockSize + 123]) {
      const data = sample(size);
      const out = await compress('gzip', chunksOf(data, 16 * 1024), { blockSize });
      assert.ok(out.equals(expectedMembers(data, blockSize)), `${size} bytes: the members of its blocks`);
      assert.ok(gunzipSync(out).equals(data), `${size} bytes: gunzip reads every member`);
    }
  });

  it('gives the same bytes however the input is chunked and however many blocks are in flight', async () => {
    const data = sample(5 * blockSize + 777, 7);
    const expected = expectedMembers(data, blockSize);
    const chunkings: Buffer[][] = [[data], [...chunksOf(data, 1000)], [...chunksOf(data, blockSize)], [...chunksOf(data, 3 * blockSize)]];
    // Sizes 1 … 2·blockSize, from the sample's own bytes: chunk ends fall anywhere relative to blocks.
    const ragged: Buffer[] = [];
    for (let at = 0, i = 0; at < data.length; i++) {
      const n = 1 + ((data[i] ?? 0) * 517) % (2 * blockSize);
      ragged.push(data.subarray(at, at + n));
      at += n;
    }
    chunkings.push(ragged);
    for (const [i, chunks] of chunkings.entries()) {
      for (const concurrency of [1, 3, 8]) {
        const out = await compress('gzip', chunks, { blockSize, concurrency });
        assert.ok(out.equals(expected), `chunking ${i}, concurrency ${concurrency}`);
      }
    }
  });

  it('cuts 1 MiB blocks by default and keeps gunzip, Go and GNU gzip reading the whole stream', async () => {
    assert.equal(DEFAULT_GZIP_BLOCK_SIZE, 1024 * 1024);
    const data = sample(3 * DEFAULT_GZIP_BLOCK_SIZE + 5000, 3);
    const out = await compress('gzip', chunksOf(data, 64 * 1024));
    assert.ok(out.equals(expectedMembers(data, DEFAULT_GZIP_BLOCK_SIZE)), 'four members of the default block size');
    assert.ok(gunzipSync(out).equals(data));
    assert.ok((await run('gzip', ['-dc'], { input: out })).equals(data), 'GNU gzip -d reads all members');

    await withTempDir('gzip-go-reader', async (dir) => {
      await mkdir(join(dir, 'reader'));
      await writeFile(join(dir, 'reader/go.mod'), 'module example.com/reader\n\ngo 1.22\n');
      await writeFile(join(dir, 'reader/main.go'), goReader);
      const env = { ...process.env, GOCACHE: goCacheDir(), GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local', CGO_ENABLED: '0' };
      await run('go', ['build', '-o', join(dir, 'gzip-reader'), '.'], { cwd: join(dir, 'reader'), env });
      const read = (await run(join(dir, 'gzip-reader'), [], { input: out })).toString();
      assert.equal(read.trim(), `${sha256(data)} ${data.length}`, "Go's gzip.Reader reads every member");
      const empty = (await run(join(dir, 'gzip-reader'), [], { input: await compress('gzip', []) })).toString();
      assert.equal(empty.trim(), `${sha256(Buffer.alloc(0))} 0`, 'an empty input is one empty member Go reads');
    });
  });

  it('holds at most `concurrency` blocks of input beyond what the consumer took', async () => {
    const size = 1024;
    let pulled = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      // Bounded so a stage that never stops pulling fails the assertion below instead of hanging.
      for (let i = 0; i < 10_000; i++) {
        pulled += 256;
        yield sample(256, i);
      }
    }
    for (const concurrency of [1, 2, 4]) {
      pulled = 0;
      const stage = compressLayer('gzip', { blockSize: size, concurrency })(endless());
      const first = await stage.next();
      assert.equal(first.done, false);
      // The stage is suspended at its yield: nothing more is read until the consumer asks.
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(pulled <= concurrency * size + 256, `concurrency ${concurrency}: pulled ${pulled} bytes`);
      assert.ok(pulled >= size, 'at least the first block was read');
      await stage.return();
    }
  });

  it('rejects a block size or concurrency that is not a positive whole number', () => {
    assert.throws(() => compressLayer('gzip', { blockSize: 0 }), RangeError);
    assert.throws(() => compressLayer('gzip', { concurrency: 1.5 }), RangeError);
  });
});

describe('zstd', () => {
  it('writes one checksummed frame that Node and the zstd CLI read whole', async () => {
    for (const size of [0, 1, 200_000, 3 * 1024 * 1024 + 17]) {
      const data = sample(size, size);
      const out = await compress('zstd', chunksOf(data, 64 * 1024));
      assert.equal(out.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');
      assert.equal(out[4]! & 0x04, 0x04, 'Content_Checksum_flag set in the frame header');
      // Node's decoder stops after the first frame: all the content in it means one frame.
      assert.ok(zstdDecompressSync(out).equals(data), `${size} bytes: Node reads it whole`);
      assert.ok((await run('zstd', ['-dc'], { input: out })).equals(data), `${size} bytes: zstd -d verifies and reads it`);
    }
  });

  it('compresses at the level asked (3 by default)', async () => {
    const data = sample(2 * 1024 * 1024, 9);
    const byDefault = await compress('zstd', [data]);
    const three = await compress('zstd', [data], { level: 3 });
    const nineteen = await compress('zstd', [data], { level: 19 });
    assert.ok(byDefault.equals(three));
    assert.ok(nineteen.length < three.length, `level 19 (${nineteen.length}) is smaller than level 3 (${three.length})`);
    assert.equal(constants.ZSTD_c_compressionLevel, 100, 'the parameter id this module sets');
  });
});

describe('errors and aborts', () => {
  for (const compression of ['gzip', 'zstd'] as const) {
    it(`${compression}: an input error rejects the pipeline with that error`, async () => {
      const boom = new Error('disk read failed');
      async function* failing(): AsyncGenerator<Buffer> {
        yield sample(300_000);
        yield sample(300_000, 2);
        throw boom;
      }
      await assert.rejects(compress(compression, failing(), { blockSize: 64 * 1024 }), (err) => err === boom);
    });

    it(`${compression}: an abort mid-stream stops the stage with ABORTED and releases the input`, async () => {
      const controller = new AbortController();
      let released = false;
      let pulled = 0;
      async function* endless(): AsyncGenerator<Buffer> {
        try {
          for (let i = 0; i < 2_000; i++) {
            pulled += 1;
            yield sample(64 * 1024, i);
          }
          throw new Error('the stage read 2000 chunks after the abort');
        } finally {
          released = true;
        }
      }
      let outputs = 0;
      const done = pipeline(endless(), compressLayer(compression, { blockSize: 64 * 1024, signal: controller.signal }), async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          assert.ok(chunk.length > 0);
          outputs += 1;
          if (outputs === 2) controller.abort(new Error('a newer save'));
        }
      });
      await assert.rejects(done, { code: 'ABORTED' });
      assert.ok(released, 'the input generator was closed');
      assert.ok(pulled < 200, `reading stopped soon after the abort (${pulled} chunks)`);
    });

    it(`${compression}: the pipeline's own signal aborts it too`, async () => {
      const controller = new AbortController();
      let released = false;
      async function* endless(): AsyncGenerator<Buffer> {
        try {
          for (let i = 0; i < 2_000; i++) yield sample(64 * 1024, i);
          throw new Error('the stage read 2000 chunks after the abort');
        } finally {
          released = true;
        }
      }
      let outputs = 0;
      const done = pipeline(
        endless(),
        compressLayer(compression, { blockSize: 64 * 1024 }),
        async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) {
            assert.ok(chunk.length > 0);
            if (++outputs === 2) controller.abort();
          }
        },
        { signal: controller.signal },
      );
      await assert.rejects(done, (err) => isAbortError(err));
      assert.ok(released, 'the input generator was closed');
    });
  }
});

describe('choosing the layer format', () => {
  it('maps --layer-compression onto the base family: zstd on OCI only, none falls back to gzip on Docker', () => {
    assert.deepEqual(appLayerFormat('oci', undefined, 'b'), { compression: 'gzip', mediaType: OCI_LAYER_GZIP });
    assert.deepEqual(appLayerFormat('oci', 'gzip', 'b'), { compression: 'gzip', mediaType: OCI_LAYER_GZIP });
    assert.deepEqual(appLayerFormat('oci', 'zstd', 'b'), { compression: 'zstd', mediaType: OCI_LAYER_ZSTD });
    assert.deepEqual(appLayerFormat('oci', 'none', 'b'), { compression: 'none', mediaType: OCI_LAYER });
    assert.deepEqual(appLayerFormat('docker', 'gzip', 'b'), { compression: 'gzip', mediaType: DOCKER_LAYER_GZIP });
    assert.deepEqual(appLayerFormat('docker', 'none', 'b'), { compression: 'gzip', mediaType: DOCKER_LAYER_GZIP });
    assert.throws(
      () => appLayerFormat('docker', 'zstd', 'docker.io/library/alpine:3'),
      (err: unknown) => err instanceof TskoError && err.code === 'BASE_IMAGE' && /docker\.io\/library\/alpine:3 is a Docker schema 2 image/.test(err.message) && /--layer-compression gzip/.test(err.hint ?? ''),
    );
  });

  it('takes --layer-compression for one-shot builds and the dev loop, and refuses anything else', async (t) => {
    const cwd = await makeTempDir('compress-config', t);
    const env = { KO_DOCKER_REPO: 'registry.example.com/team' };
    assert.equal((await resolveConfig({ cwd, env, command: 'build' })).build.image.layerCompression, undefined, 'gzip unless asked');
    assert.equal((await resolveConfig({ cwd, env, command: 'build', build: { layerCompression: 'zstd' } })).build.image.layerCompression, 'zstd');
    await assert.rejects(resolveConfig({ cwd, env, command: 'build', build: { layerCompression: 'xz' } }), (err: unknown) => err instanceof TskoError && err.code === 'USAGE' && /gzip or zstd, got "xz"/.test(err.message));

    const remote = { cwd, env, command: 'dev' as const, dev: { target: 'kubernetes' } };
    assert.equal((await resolveConfig(remote)).build.image.layerCompression, 'gzip', 'auto is gzip when the registry is elsewhere');
    assert.equal((await resolveConfig({ ...remote, dev: { ...remote.dev, layerCompression: 'zstd' } })).build.image.layerCompression, 'zstd');
    const local = { cwd, env: {}, command: 'dev' as const, dev: {} };
    assert.equal((await resolveConfig(local)).build.image.layerCompression, 'none', 'auto is plain tar with the embedded registry and the local target');
    assert.equal((await resolveConfig({ ...local, dev: { layerCompression: 'zstd' } })).build.image.layerCompression, 'zstd');
    assert.equal((await resolveConfig({ cwd, env, command: 'deploy', dev: { target: 'kubernetes' } })).build.image.layerCompression, 'gzip');
  });

  it('writes zstd layers whose diff_id is the tar inside and whose digest is the frame', async () => {
    const entries = [
      { name: 'ko-app', type: 'directory' as const, mode: 0o555 },
      { name: 'ko-app/x', type: 'file' as const, mode: 0o555, content: sample(300_000) },
    ];
    const layer = await writeLayer(entries, OCI_LAYER_ZSTD, 'zstd');
    const bytes = await readLayer(layer);
    assert.equal(layer.mediaType, OCI_LAYER_ZSTD);
    assert.equal(layer.digest, `sha256:${sha256(bytes)}`);
    const tar = zstdDecompressSync(bytes);
    assert.equal(layer.diffId, `sha256:${sha256(tar)}`);
    const gz = await writeLayer(entries, OCI_LAYER_GZIP, 'gzip');
    assert.equal(gz.diffId, layer.diffId, 'the same tar under both compressions');
    assert.ok(gunzipSync(await readLayer(gz)).equals(tar));

    const platform = { os: 'linux', architecture: 'amd64' };
    const image = appendAppLayers(await builtinStaticBase(platform), { importPath: 'example.com/app', appName: 'app', platform, kodataLayer: layer, binaryLayer: layer, created: createdFromEpoch(undefined) });
    const manifest = JSON.parse(image.manifestBytes.toString()) as { layers: { mediaType: string }[] };
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), [OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_ZSTD], 'the manifest says zstd for our layers');
  });
});
