// Retention and garbage collection of the embedded registry: retainLatest drops old images and
// their tags, gcRegistry frees exactly the blobs no manifest reaches, and neither touches anything
// still referenced or younger than the grace period.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gcRegistry, retainLatest, startRegistryServer, type RunningRegistry } from '../../src/registry/server/index.js';
import {
  ALL_MANIFEST_TYPES,
  digestOf,
  makeImage,
  makeIndex,
  OCI_INDEX,
  OCI_MANIFEST,
  pushBlob,
  pushImage,
  putManifest,
  rawRequest,
  tarLayer,
  tempDir,
  type TestImage,
} from '../fixtures/registry/images.js';

type T = { after(fn: () => unknown): void };

async function serve(t: T, root: string): Promise<RunningRegistry> {
  const registry = await startRegistryServer({ addr: '127.0.0.1:0', root });
  t.after(() => registry.close());
  return registry;
}

async function storedBlobs(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  const base = join(root, 'blobs', 'sha256');
  for (const prefix of await readdir(base).catch(() => [])) {
    for (const hex of await readdir(join(base, prefix))) out.add(`sha256:${hex}`);
  }
  return out;
}

function blobsOf(image: TestImage): string[] {
  return [...image.layers, image.config, image.manifest].map(digestOf);
}

/** The image is fully pullable: manifest by tag or digest and every blob, with matching digests. */
async function assertPullable(address: string, repository: string, reference: string, image: TestImage): Promise<void> {
  const manifest = await rawRequest(address, 'GET', `/v2/${repository}/manifests/${reference}`, { headers: { Accept: ALL_MANIFEST_TYPES } });
  assert.equal(manifest.status, 200, `${repository}:${reference}`);
  assert.equal(digestOf(manifest.body), image.digest);
  for (const blob of [...image.layers, image.config]) {
    const got = await rawRequest(address, 'GET', `/v2/${repository}/blobs/${digestOf(blob)}`);
    assert.equal(got.status, 200);
    assert.equal(digestOf(got.body), digestOf(blob));
  }
}

/** Age every file under the root so gc's grace period no longer covers it. */
function ageEverything(root: string): void {
  execFileSync('find', [root, '-exec', 'touch', '-d', '2 days ago', '{}', '+']);
}

test('retainLatest keeps the newest N images, removes the others and their tags; gc frees only their blobs', async (t) => {
  const root = await tempDir(t, 'gc');
  const registry = await serve(t, root);
  const shared = (await tarLayer({ 'base.txt': 'shared base layer' })).gz;
  const images: TestImage[] = [];
  for (let i = 0; i < 4; i++) {
    const image = await makeImage({ shared: [shared] });
    await pushImage(registry.address, 'dev/app', image, `build-${i}`);
    images.push(image);
    // Distinct push times (ms resolution) so "newest" is well defined.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await pushImage(registry.address, 'dev/app', images[3]!, 'latest');
  // Another repository shares the base layer and must be untouched by dev/app's retention.
  const other = await makeImage({ shared: [shared] });
  await pushImage(registry.address, 'other/svc', other, 'v1');

  const retained = await retainLatest(root, 'dev/app', 2, { graceMs: 0 });
  assert.deepEqual(retained.deleted.sort(), [images[0]!.digest, images[1]!.digest].sort());
  assert.deepEqual(retained.tagsRemoved.sort(), ['build-0', 'build-1']);
  const tags = (await rawRequest(registry.address, 'GET', '/v2/dev/app/tags/list')).json() as { tags: string[] };
  assert.deepEqual(tags.tags, ['build-2', 'build-3', 'latest']);
  assert.equal((await rawRequest(registry.address, 'GET', `/v2/dev/app/manifests/${images[0]!.digest}`, { headers: { Accept: OCI_MANIFEST } })).status, 404);

  const before = await storedBlobs(root);
  // Within the grace period nothing goes, even unreferenced blobs.
  const early = await gcRegistry(root);
  assert.equal(early.blobsDeleted, 0);
  assert.ok(early.blobsInGrace > 0);
  assert.deepEqual(await storedBlobs(root), before);

  ageEverything(root);
  const dry = await gcRegistry(root, { dryRun: true });
  assert.deepEqual(await storedBlobs(root), before, 'a dry run deletes nothing');
  const result = await gcRegistry(root);
  assert.equal(result.blobsDeleted, dry.blobsDeleted);
  assert.equal(result.bytesFreed, dry.bytesFreed);

  const unique = (image: TestImage) => blobsOf(image).filter((d) => d !== digestOf(shared));
  const expectedGone = [...unique(images[0]!), ...unique(images[1]!)];
  const after = await storedBlobs(root);
  assert.deepEqual([...before].filter((d) => !after.has(d)).sort(), expectedGone.sort());
  assert.equal(result.blobsDeleted, expectedGone.length);
  const freed = [...images[0]!.layers.slice(1), images[0]!.config, images[0]!.manifest, ...images[1]!.layers.slice(1), images[1]!.config, images[1]!.manifest].reduce(
    (n, b) => n + b.length,
    0,
  );
  assert.equal(result.bytesFreed, freed);

  await assertPullable(registry.address, 'dev/app', 'build-2', images[2]!);
  await assertPullable(registry.address, 'dev/app', 'latest', images[3]!);
  await assertPullable(registry.address, 'other/svc', 'v1', other);
  assert.equal((await rawRequest(registry.address, 'HEAD', `/v2/dev/app/blobs/${digestOf(images[0]!.config)}`)).status, 404);

  // A second gc finds nothing more to do.
  const again = await gcRegistry(root);
  assert.equal(again.blobsDeleted, 0);
});

test('gc keeps everything an index reaches, and referrers and their subjects', async (t) => {
  const root = await tempDir(t, 'gc-index');
  const registry = await serve(t, root);
  const amd = await makeImage({ arch: 'amd64' });
  const arm = await makeImage({ arch: 'arm64' });
  await pushImage(registry.address, 'multi/app', amd, 'amd');
  await pushImage(registry.address, 'multi/app', arm, 'arm');
  const index = makeIndex([amd, arm], ['amd64', 'arm64']);
  assert.equal((await putManifest(registry.address, 'multi/app', 'v1', index, OCI_INDEX)).status, 201);
  // Children lose their own tags: only the index holds them now.
  for (const tag of ['amd', 'arm']) assert.equal((await rawRequest(registry.address, 'DELETE', `/v2/multi/app/manifests/${tag}`)).status, 202);

  const empty = Buffer.from('{}');
  assert.equal((await pushBlob(registry.address, 'multi/app', empty)).status, 201);
  const sbom = Buffer.from(randomBytes(32).toString('hex'));
  assert.equal((await pushBlob(registry.address, 'multi/app', sbom)).status, 201);
  const referrer = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(empty), size: 2 },
      layers: [{ mediaType: 'application/spdx+json', digest: digestOf(sbom), size: sbom.length }],
      subject: { mediaType: OCI_INDEX, digest: digestOf(index), size: index.length },
    }),
  );
  assert.equal((await putManifest(registry.address, 'multi/app', digestOf(referrer), referrer, OCI_MANIFEST)).status, 201);
  // An unreferenced blob: the only thing gc may take.
  const orphan = randomBytes(512);
  assert.equal((await pushBlob(registry.address, 'multi/app', orphan)).status, 201);

  ageEverything(root);
  // keep=1: the index is the one image; its children and its referrer stay with it.
  const retained = await retainLatest(root, 'multi/app', 1, { graceMs: 0 });
  assert.deepEqual(retained.deleted, []);
  const result = await gcRegistry(root, { graceMs: 0 });
  assert.equal(result.blobsDeleted, 1);
  assert.ok(!(await storedBlobs(root)).has(digestOf(orphan)));
  await assertPullable(registry.address, 'multi/app', amd.digest, amd);
  await assertPullable(registry.address, 'multi/app', arm.digest, arm);
  const refs = (await rawRequest(registry.address, 'GET', `/v2/multi/app/referrers/${digestOf(index)}`)).json() as { manifests: Array<{ digest: string }> };
  assert.deepEqual(refs.manifests.map((m) => m.digest), [digestOf(referrer)]);
  assert.equal((await rawRequest(registry.address, 'GET', `/v2/multi/app/blobs/${digestOf(sbom)}`)).status, 200);

  // Deleting the index by digest (keep=0 would do the same) lets gc take children and the referrer too.
  const all = await retainLatest(root, 'multi/app', 0, { graceMs: 0 });
  assert.deepEqual(all.deleted.sort(), [amd.digest, arm.digest, digestOf(index), digestOf(referrer)].sort());
  assert.deepEqual(all.tagsRemoved, ['v1']);
  const final = await gcRegistry(root, { graceMs: 0 });
  assert.equal(final.blobsDeleted, blobsOf(amd).length + blobsOf(arm).length + 4);
  assert.deepEqual([...(await storedBlobs(root))], []);
});

test('retention leaves recently pushed manifests alone (an index may still be on its way)', async (t) => {
  const root = await tempDir(t, 'retain-grace');
  const registry = await serve(t, root);
  const images: TestImage[] = [];
  for (let i = 0; i < 3; i++) {
    const image = await makeImage();
    await pushImage(registry.address, 'grace/app', image, `b${i}`);
    images.push(image);
  }
  const retained = await retainLatest(root, 'grace/app', 1);
  assert.deepEqual(retained.deleted, []);
  const later = await retainLatest(root, 'grace/app', 1, { now: Date.now() + 60 * 60 * 1000 });
  assert.equal(later.deleted.length, 2);
  const tags = (await rawRequest(registry.address, 'GET', '/v2/grace/app/tags/list')).json() as { tags: string[] };
  assert.equal(tags.tags.length, 1);
});

test('gc never deletes a blob a push just checked for, even when nothing references it yet', async (t) => {
  const root = await tempDir(t, 'gc-touch');
  const registry = await serve(t, root);
  const blob = randomBytes(1024);
  assert.equal((await pushBlob(registry.address, 'touch/app', blob)).status, 201);
  ageEverything(root);
  // A pusher's HEAD (it will skip the upload and reference the blob in its manifest) refreshes it.
  assert.equal((await rawRequest(registry.address, 'HEAD', `/v2/touch/app/blobs/${digestOf(blob)}`)).status, 200);
  const result = await gcRegistry(root);
  assert.equal(result.blobsDeleted, 0);
  assert.equal(result.blobsInGrace, 1);
  const stored = await readFile(join(root, 'blobs', 'sha256', digestOf(blob).slice(7, 9), digestOf(blob).slice(7)));
  assert.equal(digestOf(stored), digestOf(blob));
});

/** Every manifest record of a repository, as digests. */
async function recordedManifests(root: string, repository: string): Promise<string[]> {
  const dir = join(root, 'repositories', ...repository.split('/'), '_manifests', 'sha256');
  return (await readdir(dir).catch(() => [] as string[])).map((hex) => `sha256:${hex}`).sort();
}

test('gc --untagged removes manifests no tag reaches, then their blobs; tags, indexes and kept subjects keep theirs', async (t) => {
  const root = await tempDir(t, 'gc-untagged');
  const registry = await serve(t, root);
  const shared = (await tarLayer({ 'base.txt': 'shared base layer' })).gz;
  // :latest pushed twice: the first image loses its tag.
  const old = await makeImage({ shared: [shared] });
  await pushImage(registry.address, 'un/app', old, 'latest');
  const current = await makeImage({ shared: [shared] });
  await pushImage(registry.address, 'un/app', current, 'latest');
  // Deleted by tag: the manifest stays recorded, reachable by digest only.
  const dropped = await makeImage();
  await pushImage(registry.address, 'un/app', dropped, 'dropped');
  assert.equal((await rawRequest(registry.address, 'DELETE', '/v2/un/app/manifests/dropped')).status, 202);
  // A tagged index whose children are untagged.
  const amd = await makeImage({ arch: 'amd64' });
  const arm = await makeImage({ arch: 'arm64' });
  for (const [image, tag] of [[amd, 'tmp-amd'], [arm, 'tmp-arm']] as const) {
    await pushImage(registry.address, 'un/app', image, tag);
    assert.equal((await rawRequest(registry.address, 'DELETE', `/v2/un/app/manifests/${tag}`)).status, 202);
  }
  const index = makeIndex([amd, arm], ['amd64', 'arm64']);
  assert.equal((await putManifest(registry.address, 'un/app', 'multi', index, OCI_INDEX)).status, 201);
  // Untagged referrers: one of the tagged current image (stays), one of the untagged old one (goes).
  const empty = Buffer.from('{}');
  assert.equal((await pushBlob(registry.address, 'un/app', empty)).status, 201);
  const referrerOf = async (subject: TestImage, note: string): Promise<Buffer> => {
    const payload = Buffer.from(note);
    assert.equal((await pushBlob(registry.address, 'un/app', payload)).status, 201);
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/spdx+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(empty), size: 2 },
        layers: [{ mediaType: 'application/spdx+json', digest: digestOf(payload), size: payload.length }],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length },
      }),
    );
    assert.equal((await putManifest(registry.address, 'un/app', digestOf(bytes), bytes, OCI_MANIFEST)).status, 201);
    return bytes;
  };
  const keptReferrer = await referrerOf(current, `sbom of current ${randomBytes(8).toString('hex')}`);
  const goneReferrer = await referrerOf(old, `sbom of old ${randomBytes(8).toString('hex')}`);

  // Everything was just pushed: the grace period protects it all.
  const early = await gcRegistry(root, { untagged: true });
  assert.equal(early.manifestsDeleted, 0);
  assert.equal(early.manifestsInGrace, 3, 'old, dropped and the referrer of old');
  assert.equal(early.blobsDeleted, 0);

  ageEverything(root);
  const before = await storedBlobs(root);
  const dry = await gcRegistry(root, { untagged: true, dryRun: true, now: Date.now() + 60 * 60 * 1000 });
  assert.deepEqual(await storedBlobs(root), before, 'a dry run deletes nothing');
  assert.equal(dry.manifestsDeleted, 3);
  const result = await gcRegistry(root, { untagged: true, now: Date.now() + 60 * 60 * 1000 });
  assert.equal(result.manifestsDeleted, 3);
  assert.equal(result.tagsRemoved, 0);
  assert.equal(result.blobsDeleted, dry.blobsDeleted, 'the dry run counted what the real run deleted');
  assert.equal(result.bytesFreed, dry.bytesFreed);

  assert.deepEqual(await recordedManifests(root, 'un/app'), [current.digest, amd.digest, arm.digest, digestOf(index), digestOf(keptReferrer)].sort());
  const uniqueTo = (image: TestImage) => [...image.layers.filter((l) => l !== shared), image.config, image.manifest].map(digestOf);
  const payloadOf = (referrer: Buffer) => (JSON.parse(referrer.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
  // Freed: old's and dropped's own layer, config and manifest, the old referrer and its payload.
  const goneBlobs = [...uniqueTo(old), ...uniqueTo(dropped), digestOf(goneReferrer), payloadOf(goneReferrer)];
  const after = await storedBlobs(root);
  assert.deepEqual([...before].filter((d) => !after.has(d)).sort(), goneBlobs.sort());
  assert.equal(result.blobsDeleted, goneBlobs.length);

  await assertPullable(registry.address, 'un/app', 'latest', current);
  await assertPullable(registry.address, 'un/app', amd.digest, amd);
  await assertPullable(registry.address, 'un/app', arm.digest, arm);
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/un/app/manifests/multi', { headers: { Accept: OCI_INDEX } })).status, 200);
  for (const gone of [old.digest, dropped.digest, digestOf(goneReferrer)]) {
    assert.equal((await rawRequest(registry.address, 'GET', `/v2/un/app/manifests/${gone}`, { headers: { Accept: OCI_MANIFEST } })).status, 404, gone);
  }
  const refs = (await rawRequest(registry.address, 'GET', `/v2/un/app/referrers/${current.digest}`)).json() as { manifests: Array<{ digest: string }> };
  assert.deepEqual(refs.manifests.map((m) => m.digest), [digestOf(keptReferrer)]);

  const again = await gcRegistry(root, { untagged: true, graceMs: 0 });
  assert.equal(again.manifestsDeleted, 0);
  assert.equal(again.blobsDeleted, 0);
});

test('gc --keep N keeps the newest N images of every repository, then frees the rest', async (t) => {
  const root = await tempDir(t, 'gc-keep');
  const registry = await serve(t, root);
  const pushed: Record<string, TestImage[]> = { 'keep/a': [], 'keep/b': [] };
  for (let i = 0; i < 3; i++) {
    for (const repository of Object.keys(pushed)) {
      const image = await makeImage();
      await pushImage(registry.address, repository, image, `v${i}`);
      pushed[repository]!.push(image);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  ageEverything(root);
  // pushedAt is recorded in the manifest records, not the files' mtimes: judge them an hour later.
  const result = await gcRegistry(root, { keep: 1, now: Date.now() + 60 * 60 * 1000 });
  assert.equal(result.manifestsDeleted, 4);
  assert.equal(result.tagsRemoved, 4);
  assert.equal(result.blobsDeleted, 4 * 3);
  for (const [repository, images] of Object.entries(pushed)) {
    assert.deepEqual(await recordedManifests(root, repository), [images[2]!.digest]);
    const tags = (await rawRequest(registry.address, 'GET', `/v2/${repository}/tags/list`)).json() as { tags: string[] };
    assert.deepEqual(tags.tags, ['v2']);
    await assertPullable(registry.address, repository, 'v2', images[2]!);
  }
});

test('tsko registry gc --untagged: the grace period keeps what was just pushed and says so; --grace-seconds 0 frees it at once', async (t) => {
  const root = await tempDir(t, 'gc-cli');
  const registry = await serve(t, root);
  const first = await makeImage();
  await pushImage(registry.address, 'cli/app', first, 'latest');
  const second = await makeImage();
  await pushImage(registry.address, 'cli/app', second, 'latest');

  const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.js');
  const run = (...args: string[]): { stdout: string; stderr: string } => {
    const out = spawnSync(process.execPath, [main, 'registry', 'gc', '--root', root, ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(out.status, 0, out.stderr);
    return { stdout: out.stdout, stderr: out.stderr };
  };
  const graced = run('--untagged');
  assert.equal(graced.stdout, '');
  assert.match(
    graced.stderr,
    /^tsko registry gc: deleted 0 manifests and 0 tags, deleted 0 blobs \(0 bytes\), kept 6, 1 manifests too recent to remove \(--grace-seconds 0 skips the grace period when nothing is pushing\) \(root .+\)\n$/,
  );
  const freed = run('--untagged', '--grace-seconds', '0');
  assert.match(freed.stderr, /^tsko registry gc: deleted 1 manifests and 0 tags, deleted 3 blobs \(\d+ bytes\), kept 3 \(root /);
  assert.deepEqual(await recordedManifests(root, 'cli/app'), [second.digest]);
  await assertPullable(registry.address, 'cli/app', 'latest', second);
});

test('gc removes upload sessions idle longer than the expiry and leaves younger ones', async (t) => {
  const root = await tempDir(t, 'gc-uploads');
  const registry = await serve(t, root);
  const start = async () => String((await rawRequest(registry.address, 'POST', '/v2/up/app/blobs/uploads/')).headers['docker-upload-uuid']);
  const old = await start();
  execFileSync('touch', ['-d', '2 hours ago', join(root, 'uploads', old), join(root, 'uploads', old, 'data')]);
  const young = await start();
  const result = await gcRegistry(root);
  assert.equal(result.uploadsDeleted, 1);
  assert.deepEqual(await readdir(join(root, 'uploads')), [young]);
  const shorter = await gcRegistry(root, { uploadIdleMs: 0 });
  assert.equal(shorter.uploadsDeleted, 1);
  assert.deepEqual(await readdir(join(root, 'uploads')), []);
});
