// The image model without a registry: one-pass layers are reproducible and their digests match
// their bytes; the builtin base is deterministic; the app config is laid out as ko's.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { makeTempDir } from '../support/tmp.js';
import { appendAppLayers, createdFromEpoch } from '../../src/image/assemble.js';
import { builtinStaticBase } from '../../src/image/builtin-base.js';
import { readLayer } from '../../src/image/layer.js';
import { LayerFiles } from '../../src/image/layer-files.js';
import { writeLayer } from '../../src/image/layer-writer.js';
import { DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER, OCI_LAYER_GZIP } from '../../src/image/media-types.js';

const hex = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('image model', () => {
  it('writes a layer whose digest and diff_id match its compressed and uncompressed bytes, the same every time', async () => {
    const entries = [
      { name: 'ko-app', type: 'directory' as const, mode: 0o555 },
      { name: 'ko-app/x', type: 'file' as const, mode: 0o555, content: Buffer.from('binary') },
    ];
    const a = await writeLayer(entries, OCI_LAYER_GZIP);
    const b = await writeLayer(entries, OCI_LAYER_GZIP);
    assert.equal(a.digest, b.digest);
    const data = await readLayer(a);
    assert.equal(a.digest, hex(data));
    assert.equal(a.size, data.length);
    assert.equal(a.diffId, hex(gunzipSync(data)));
    assert.ok((await readLayer(a)).equals(data), 'a layer opens its bytes again, the same');
  });

  it('writes an uncompressed file layer from a file many read buffers long, byte for byte the tar of its bytes in memory', async (t) => {
    // 12.5 MB: more 1 MB reads than the writer has buffers, so buffers must come back and be
    // reused; a buffer reused before its bytes were written would show as wrong bytes here.
    const dir = await makeTempDir('tsko-layer-', t);
    const binary = randomBytes(12 * 1024 * 1024 + 512 * 1024 + 7);
    const path = join(dir, 'app');
    await writeFile(path, binary);
    const files = new LayerFiles(join(dir, 'layers'));
    t.after(() => files.close());
    const head = { name: 'ko-app', type: 'directory' as const, mode: 0o555 };
    const fromFile = await writeLayer([head, { name: 'ko-app/app', type: 'file', mode: 0o555, content: { path, size: binary.length } }], OCI_LAYER, 'none', files);
    const inMemory = await writeLayer([head, { name: 'ko-app/app', type: 'file', mode: 0o555, content: binary }], OCI_LAYER, 'none');
    assert.ok(fromFile.path, 'written to a file');
    const bytes = await readFile(fromFile.path);
    assert.ok(bytes.equals(await readLayer(inMemory)), 'the same tar as from the bytes in memory');
    assert.equal(fromFile.digest, hex(bytes));
    assert.equal(fromFile.diffId, fromFile.digest);
    assert.equal(fromFile.size, bytes.length);
    assert.equal(fromFile.digest, inMemory.digest);

    // A file longer than the size it was listed with fails, as a tar entry must, and leaves no layer.
    await appendFile(path, 'more');
    await assert.rejects(
      writeLayer([{ name: 'ko-app/app', type: 'file', mode: 0o555, content: { path, size: binary.length } }], OCI_LAYER, 'none', files),
      /size mismatch/i,
    );
  });

  it('builds the builtin base deterministically, with the nonroot user and CA bundle', async () => {
    const one = await builtinStaticBase({ os: 'linux', architecture: 'amd64' });
    const two = await builtinStaticBase({ os: 'linux', architecture: 'arm64' });
    assert.equal(one.layers[0]?.digest, two.layers[0]?.digest, 'the same layer for every platform');
    assert.notEqual(one.digest, two.digest, 'configs differ by architecture');
    assert.equal(one.config.config?.User, '65532');
    const layer = one.layers[0];
    assert.ok(layer);
    const tar = gunzipSync(await readLayer(layer)).toString('latin1');
    assert.match(tar, /etc\/ssl\/certs\/ca-certificates\.crt/);
    assert.match(tar, /nonroot:x:65532:65532/);
  });

  it('lays out the app config as ko does and follows a Docker base', async () => {
    const base = await builtinStaticBase({ os: 'linux', architecture: 'amd64' });
    const dockerBase = { ...base, manifestMediaType: DOCKER_MANIFEST, config: { ...base.config, config: { Env: ['FOO=1'], Cmd: ['/bin/sh'] } } };
    const kodata = await writeLayer([{ name: 'var/run/ko', type: 'directory', mode: 0o555 }], OCI_LAYER_GZIP);
    const binary = await writeLayer([{ name: 'ko-app/app', type: 'file', mode: 0o555, content: Buffer.from('x') }], OCI_LAYER_GZIP);
    const image = appendAppLayers(dockerBase, { importPath: 'example.com/app', appName: 'app', platform: { os: 'linux', architecture: 'amd64' }, kodataLayer: kodata, binaryLayer: binary, created: createdFromEpoch(undefined) });
    assert.equal(image.manifestMediaType, DOCKER_MANIFEST);
    const manifest = JSON.parse(image.manifestBytes.toString()) as { layers: Array<{ mediaType: string }> };
    assert.deepEqual(manifest.layers.slice(-2).map((l) => l.mediaType), [DOCKER_LAYER_GZIP, DOCKER_LAYER_GZIP]);
    assert.deepEqual(image.config.config?.Entrypoint, ['/ko-app/app']);
    assert.equal(image.config.config?.Cmd, undefined);
    assert.deepEqual(image.config.config?.Env, ['FOO=1', 'PATH=/ko-app', 'KO_DATA_PATH=/var/run/ko']);
    assert.equal(image.config.rootfs.diff_ids.length, 3);
    assert.equal(image.config.history?.at(-1)?.comment, 'go build output, at /ko-app/app');
    assert.equal(image.config.created, '1970-01-01T00:00:00Z');
    assert.equal(createdFromEpoch('1700000000'), '2023-11-14T22:13:20Z');
    assert.throws(() => createdFromEpoch('yesterday'));
  });
});
