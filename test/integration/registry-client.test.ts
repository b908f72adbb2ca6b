// The registry client against a real docker-registry (distribution 2.8.2) without auth: blob
// upload (monolithic, streamed, chunked), HEAD skip, cross-repo mount, manifests by tag and digest
// in OCI and Docker types, digest checks, 404s and an unreachable registry.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { TskoError } from '../../src/errors.js';
import { createEventBus, type TskoEvent } from '../../src/events.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/image/media-types.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { Repository } from '../../src/registry/reference.js';
import { type DockerRegistry, freePort, startDockerRegistry } from '../support/docker-registry.js';
import { digestOf, makeImage, pushImage } from '../support/registry-fixtures.js';

async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<TskoError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TskoError, `expected a TskoError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (pattern) assert.match(caught.message, pattern);
  assert.ok(!caught.message.includes('\n'), 'one line');
  return caught;
}

describe('RegistryClient against docker-registry (no auth)', () => {
  let registry: DockerRegistry;
  let client: RegistryClient;
  const events: TskoEvent[] = [];

  before(async () => {
    registry = await startDockerRegistry();
    const bus = createEventBus();
    bus.subscribe((e) => events.push(e));
    client = new RegistryClient({ events: bus });
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
  });

  const repo = (name: string): Repository => ({ registry: registry.host, repository: name });

  it('uploads a blob monolithically and skips it by HEAD afterwards', async () => {
    const data = randomBytes(100_000);
    const digest = digestOf(data);
    assert.equal(await client.headBlob(repo('mono/a'), digest), false);
    let opened = 0;
    await client.uploadBlob(repo('mono/a'), digest, data.length, () => {
      opened++;
      return data;
    });
    assert.equal(opened, 1);
    assert.equal(await client.headBlob(repo('mono/a'), digest), true);
    assert.deepEqual(await client.getBlob(repo('mono/a'), digest), data);
    // Another repository of the same registry does not see it without a mount.
    assert.equal(await client.headBlob(repo('mono/b'), digest), false);
  });

  it('uploads from a stream factory and streams the blob back', async () => {
    const data = randomBytes(300_000);
    const digest = digestOf(data);
    await client.uploadBlob(repo('stream/a'), digest, data.length, () => Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    const { size, stream } = await client.openBlobStream(repo('stream/a'), digest);
    assert.equal(size, data.length);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), data);
  });

  it('uploads a blob in chunks, following each Location', async () => {
    const data = randomBytes(10_000);
    const digest = digestOf(data);
    await client.uploadBlobChunked(repo('chunked/a'), digest, data, 3000);
    assert.deepEqual(await client.getBlob(repo('chunked/a'), digest), data);
    // One chunk, exactly the size.
    const small = randomBytes(3000);
    await client.uploadBlobChunked(repo('chunked/a'), digestOf(small), small, 3000);
    assert.equal(await client.headBlob(repo('chunked/a'), digestOf(small)), true);
  });

  it('mounts a blob across repositories (201), and reports false for an unknown one', async () => {
    const data = randomBytes(5000);
    const digest = digestOf(data);
    await client.uploadBlob(repo('mount/src'), digest, data.length, () => data);
    assert.equal(await client.mountBlob(repo('mount/dst'), digest, repo('mount/src')), true);
    assert.equal(await client.headBlob(repo('mount/dst'), digest), true);
    const missing = digestOf(randomBytes(10));
    assert.equal(await client.mountBlob(repo('mount/dst2'), missing, repo('mount/src')), false);
    assert.equal(await client.headBlob(repo('mount/dst2'), missing), false);
    // 2.8.2 answers an unknown mount with 202 and an upload session, which is cancelled, not left open.
    const lines = events.flatMap((e) => (e.type === 'log' ? [e.message] : []));
    assert.ok(lines.some((l) => /^POST .*\/v2\/mount\/dst2\/blobs\/uploads\/\?mount=.* → 202/.test(l)), 'mount answered 202');
    assert.ok(lines.some((l) => /^DELETE .*\/v2\/mount\/dst2\/blobs\/uploads\/.* → 204/.test(l)), 'session deleted');
  });

  it('refuses a blob whose bytes do not match the digest', async () => {
    const data = randomBytes(100);
    const wrong = digestOf(randomBytes(100));
    const err = await rejectsWith(client.uploadBlob(repo('bad/a'), wrong, data.length, () => data), 'REGISTRY_HTTP', /400 DIGEST_INVALID/);
    assert.match(err.message, new RegExp(registry.host.replace(/\./g, '\\.')));
    assert.equal(await client.headBlob(repo('bad/a'), wrong), false);
  });

  for (const family of ['oci', 'docker'] as const) {
    it(`puts, heads and gets a ${family} manifest by tag and by digest`, async () => {
      const image = makeImage(family);
      const r = repo(`manifest/${family}`);
      assert.equal(await client.headManifest({ ...r, tag: 'v1' }), undefined);
      const digest = await pushImage(client, r, image, 'v1');
      assert.equal(digest, digestOf(image.manifest));

      const byTag = await client.headManifest({ ...r, tag: 'v1' });
      assert.deepEqual(byTag, { digest, mediaType: image.mediaType, size: image.manifest.length });
      const byDigest = await client.headManifest({ ...r, digest });
      assert.deepEqual(byDigest, byTag);

      for (const ref of [{ ...r, tag: 'v1' }, { ...r, digest }]) {
        const got = await client.getManifest(ref);
        assert.deepEqual(got.bytes, image.manifest);
        assert.equal(got.digest, digest);
        assert.equal(got.mediaType, image.mediaType);
        assert.equal(got.size, image.manifest.length);
      }
      // By digest only, no tag: stored under the digest.
      const again = makeImage(family);
      for (const blob of [again.layer, again.config]) await client.uploadBlob(r, digestOf(blob), blob.length, () => blob);
      const d2 = await client.putManifest({ ...r, digest: digestOf(again.manifest) }, again.manifest, again.mediaType);
      assert.equal((await client.getManifest({ ...r, digest: d2 })).bytes.toString(), again.manifest.toString());
    });
  }

  it('puts an OCI index over pushed manifests', async () => {
    const r = repo('manifest/index');
    const a = makeImage('oci');
    const da = await pushImage(client, r, a, 'a');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: da, size: a.manifest.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
    const di = await client.putManifest({ ...r, tag: 'multi' }, index, OCI_INDEX);
    const got = await client.getManifest({ ...r, tag: 'multi' });
    assert.equal(got.digest, di);
    assert.equal(got.mediaType, OCI_INDEX);
  });

  it('refuses a manifest whose blobs are missing, and a reference digest that does not match', async () => {
    const image = makeImage('oci');
    await rejectsWith(client.putManifest({ ...repo('manifest/missing'), tag: 'x' }, image.manifest, image.mediaType), 'REGISTRY_HTTP', /400 MANIFEST_BLOB_UNKNOWN/);
    await rejectsWith(client.putManifest({ ...repo('manifest/missing'), digest: digestOf(Buffer.from('other')) }, image.manifest, image.mediaType), 'REGISTRY_DIGEST');
    assert.equal(await client.headManifest({ ...repo('manifest/missing'), tag: 'x' }), undefined);
  });

  it('answers 404s: missing manifest, blob and repository', async () => {
    const r = repo('nothing/here');
    assert.equal(await client.headManifest({ ...r, tag: 'latest' }), undefined);
    assert.equal(await client.headManifest({ ...r, digest: digestOf(Buffer.from('x')) }), undefined);
    await rejectsWith(client.getManifest({ ...r, tag: 'latest' }), 'REGISTRY_HTTP', /GET manifest .*nothing\/here:latest.* 404 MANIFEST_UNKNOWN/);
    await rejectsWith(client.getBlob(r, digestOf(Buffer.from('x'))), 'REGISTRY_HTTP', /404/);
    assert.deepEqual(await client.listTags(r), []);
  });

  it('fetches by digest when a reference has both tag and digest', async () => {
    const image = makeImage('oci');
    const r = repo('verify/a');
    const digest = await pushImage(client, r, image, 'v1');
    // Asking by tag with a digest the content does not have is refused, not trusted.
    const other = digestOf(Buffer.from('not it'));
    await rejectsWith(client.getManifest({ ...r, tag: 'v1', digest: other }), 'REGISTRY_HTTP', /404/);
    assert.equal((await client.getManifest({ ...r, tag: 'v1', digest })).digest, digest);
  });

  it('lists tags', async () => {
    const r = repo('tags/a');
    const image = makeImage('oci');
    await pushImage(client, r, image, 'one');
    await client.putManifest({ ...r, tag: 'two' }, image.manifest, image.mediaType);
    assert.deepEqual((await client.listTags(r)).sort(), ['one', 'two']);
  });

  it('emits redacted debug lines for requests', () => {
    const lines = events.filter((e): e is Extract<TskoEvent, { type: 'log' }> => e.type === 'log' && e.level === 'debug');
    assert.ok(lines.some((e) => /^PUT http:\/\/127\.0\.0\.1:\d+\/v2\/manifest\/oci\/manifests\/v1 → 201/.test(e.message)), 'a manifest PUT line');
  });

  it('stops at once on an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await rejectsWith(client.headBlob(repo('abort/a'), digestOf(Buffer.from('a')), controller.signal), 'ABORTED');
    const data = randomBytes(1000);
    await rejectsWith(client.uploadBlob(repo('abort/a'), digestOf(data), data.length, () => data, controller.signal), 'ABORTED');
  });
});

describe('RegistryClient with path-only Locations', () => {
  it('uploads through relative Location headers', async (t) => {
    const registry = await startDockerRegistry({ relativeUrls: true });
    const client = new RegistryClient();
    t.after(async () => {
      await client.close();
      await registry.stop();
    });
    const r = { registry: registry.host, repository: 'rel/a' };
    const data = randomBytes(7000);
    await client.uploadBlob(r, digestOf(data), data.length, () => data);
    await client.uploadBlobChunked(r, digestOf(data.subarray(1)), data.subarray(1), 2500);
    assert.equal(await client.headBlob(r, digestOf(data)), true);
    assert.equal(await client.headBlob(r, digestOf(data.subarray(1))), true);
  });
});

describe('RegistryClient against an unreachable registry', () => {
  it('fails quickly with REGISTRY_UNREACHABLE naming the registry and the operation', async () => {
    const port = await freePort();
    const client = new RegistryClient();
    try {
      const started = Date.now();
      const err = await rejectsWith(client.headManifest({ registry: `127.0.0.1:${port}`, repository: 'x', tag: 'latest' }), 'REGISTRY_UNREACHABLE');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(err.message, /HEAD manifest/);
      assert.match(err.message, /connection refused/);
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    } finally {
      await client.close();
    }
  });
});
