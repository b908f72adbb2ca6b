// The embedded registry against real clients (skopeo both ways, --all for an index) and the bad
// input the issue lists: malformed manifests, digest mismatches, unknown uploads, invalid names,
// oversized bodies, a full disk, a busy port, remote binds without auth, Basic and token auth.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import bcrypt from 'bcryptjs';
import { TskoError } from '../../src/errors.js';
import {
  defaultRegistryRoot,
  ensureEmbeddedRegistry,
  parseHtpasswd,
  startRegistryServer,
  type RegistryServerOptions,
  type RunningRegistry,
} from '../../src/registry/server/index.js';
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
  skopeo,
  tempDir,
  writeOciLayout,
} from '../fixtures/registry/images.js';

type T = { after(fn: () => unknown): void };

async function serve(t: T, options: Partial<RegistryServerOptions> = {}): Promise<RunningRegistry> {
  const root = options.root ?? (await tempDir(t, 'root'));
  const registry = await startRegistryServer({ addr: '127.0.0.1:0', ...options, root });
  t.after(() => registry.close());
  return registry;
}

/** Every blob file in the store, as digests. */
async function storedBlobs(root: string): Promise<string[]> {
  const out: string[] = [];
  const base = join(root, 'blobs', 'sha256');
  for (const prefix of await readdir(base).catch(() => [])) {
    for (const hex of await readdir(join(base, prefix))) out.push(`sha256:${hex}`);
  }
  return out.sort();
}

function layoutManifestDigest(indexJson: string): string {
  const index = JSON.parse(indexJson) as { manifests: Array<{ digest: string }> };
  assert.equal(index.manifests.length, 1);
  return index.manifests[0]!.digest;
}

test('/v2/ answers 200 {} with the API version and tsko headers; port 0 reports the real port', async (t) => {
  const registry = await serve(t);
  assert.match(registry.address, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(registry.address, '127.0.0.1:0');
  const res = await rawRequest(registry.address, 'GET', '/v2/');
  assert.equal(res.status, 200);
  assert.deepEqual(res.json(), {});
  assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  assert.equal(res.headers['x-tsko-registry'], '1');
});

test('skopeo pushes a hand-written OCI layout and pulls it back with the same digests', async (t) => {
  const registry = await serve(t);
  const work = await tempDir(t, 'skopeo');
  const image = await makeImage();
  await writeOciLayout(join(work, 'src'), 'v1', { bytes: image.manifest, mediaType: image.mediaType }, [...image.layers, image.config]);

  await skopeo(['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(work, 'src')}:v1`, `docker://${registry.address}/test/hello:v1`], work);
  const head = await rawRequest(registry.address, 'HEAD', '/v2/test/hello/manifests/v1', { headers: { Accept: ALL_MANIFEST_TYPES } });
  assert.equal(head.status, 200);
  assert.equal(head.headers['docker-content-digest'], image.digest);

  await skopeo(['copy', '--src-tls-verify=false', `docker://${registry.address}/test/hello:v1`, `oci:${join(work, 'out')}:v1`], work);
  assert.equal(layoutManifestDigest(await readFile(join(work, 'out', 'index.json'), 'utf8')), image.digest);
  for (const blob of [...image.layers, image.config]) {
    const copied = await readFile(join(work, 'out', 'blobs', 'sha256', digestOf(blob).slice(7)));
    assert.equal(digestOf(copied), digestOf(blob));
  }

  const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${registry.address}/test/hello:v1`], work)).stdout) as unknown;
  assert.deepEqual(inspected, JSON.parse(image.manifest.toString()));

  // umoci checks what skopeo doesn't: that the config's diff_ids match the layers it unpacks.
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${join(work, 'out')}:v1`, join(work, 'bundle')], { timeout: 60_000, stdio: 'pipe' });
  const unpacked = await readdir(join(work, 'bundle', 'rootfs'));
  assert.equal(unpacked.length, 1);
  assert.match(unpacked[0]!, /^file-[0-9a-f]{8}\.txt$/);
});

test('skopeo copy --all round-trips an index of two manifests', async (t) => {
  const registry = await serve(t);
  const work = await tempDir(t, 'skopeo-all');
  const amd = await makeImage({ arch: 'amd64' });
  const arm = await makeImage({ arch: 'arm64' });
  const index = makeIndex([amd, arm], ['amd64', 'arm64']);
  const blobs = [amd, arm].flatMap((img) => [...img.layers, img.config, img.manifest]);
  await writeOciLayout(join(work, 'src'), 'multi', { bytes: index, mediaType: OCI_INDEX }, blobs);

  await skopeo(['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(work, 'src')}:multi`, `docker://${registry.address}/test/multi:latest`], work);
  const got = await rawRequest(registry.address, 'GET', '/v2/test/multi/manifests/latest', { headers: { Accept: ALL_MANIFEST_TYPES } });
  assert.equal(got.status, 200);
  assert.equal(got.headers['content-type'], OCI_INDEX);
  assert.equal(digestOf(got.body), digestOf(index));

  await skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${registry.address}/test/multi:latest`, `oci:${join(work, 'out')}:multi`], work);
  assert.equal(layoutManifestDigest(await readFile(join(work, 'out', 'index.json'), 'utf8')), digestOf(index));
  for (const child of [amd, arm]) {
    const bytes = await readFile(join(work, 'out', 'blobs', 'sha256', child.digest.slice(7)));
    assert.equal(digestOf(bytes), child.digest);
  }
});

test('Docker schema 2 manifests and lists are stored and served with their own media types', async (t) => {
  const registry = await serve(t);
  const image = await makeImage({ family: 'docker' });
  await pushImage(registry.address, 'docker/img', image, 'v1');
  const got = await rawRequest(registry.address, 'GET', '/v2/docker/img/manifests/v1', { headers: { Accept: ALL_MANIFEST_TYPES } });
  assert.equal(got.status, 200);
  assert.equal(got.headers['content-type'], image.mediaType);
  assert.equal(digestOf(got.body), image.digest);
  // Content negotiation: a client that only takes OCI manifests is told this one is unknown to it.
  const ociOnly = await rawRequest(registry.address, 'GET', '/v2/docker/img/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
  assert.equal(ociOnly.status, 404);
  assert.equal(ociOnly.errorCode(), 'MANIFEST_UNKNOWN');
});

test('malformed manifests are 400 MANIFEST_INVALID; missing blobs are MANIFEST_BLOB_UNKNOWN', async (t) => {
  const registry = await serve(t);
  const cases: Array<[string, string]> = [
    ['not json', '{"schemaVersion": 2,'],
    ['wrong schema version', JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST, config: {}, layers: [] })],
    ['config without digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', size: 1 }, layers: [] })],
    ['layers not an array', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', digest: digestOf(Buffer.from('')), size: 0 }, layers: {} })],
  ];
  for (const [what, body] of cases) {
    const res = await putManifest(registry.address, 'bad/input', 'v1', Buffer.from(body), OCI_MANIFEST);
    assert.equal(res.status, 400, what);
    assert.equal(res.errorCode(), 'MANIFEST_INVALID', what);
  }
  const image = await makeImage();
  const res = await putManifest(registry.address, 'bad/input', 'v1', image.manifest, image.mediaType);
  assert.equal(res.status, 400);
  assert.equal(res.errorCode(), 'MANIFEST_BLOB_UNKNOWN');
  const index = makeIndex([image], ['amd64']);
  const indexRes = await putManifest(registry.address, 'bad/input', 'multi', index, OCI_INDEX);
  assert.equal(indexRes.errorCode(), 'MANIFEST_BLOB_UNKNOWN');
  // A manifest PUT by a digest that is not its own.
  await pushImage(registry.address, 'bad/input', image, 'ok');
  const wrong = await putManifest(registry.address, 'bad/input', digestOf(Buffer.from('other')), image.manifest, image.mediaType);
  assert.equal(wrong.errorCode(), 'DIGEST_INVALID');
});

test('a digest mismatch on upload close is DIGEST_INVALID and stores nothing', async (t) => {
  const root = await tempDir(t, 'root');
  const registry = await serve(t, { root });
  const bytes = randomBytes(4096);
  const claimed = digestOf(Buffer.from('something else'));
  const before = await storedBlobs(root);

  const start = await rawRequest(registry.address, 'POST', '/v2/test/mismatch/blobs/uploads/');
  const put = await rawRequest(registry.address, 'PUT', `${start.headers.location}?digest=${claimed}`, { body: bytes });
  assert.equal(put.status, 400);
  assert.equal(put.errorCode(), 'DIGEST_INVALID');
  const single = await rawRequest(registry.address, 'POST', `/v2/test/mismatch/blobs/uploads/?digest=${claimed}`, { body: bytes });
  assert.equal(single.errorCode(), 'DIGEST_INVALID');

  assert.deepEqual(await storedBlobs(root), before);
  for (const d of [claimed, digestOf(bytes)]) {
    assert.equal((await rawRequest(registry.address, 'HEAD', `/v2/test/mismatch/blobs/${d}`)).status, 404);
  }
  assert.deepEqual(await readdir(join(root, 'uploads')), [], 'failed uploads leave no session data behind');
});

test('unknown upload ids are 404 BLOB_UPLOAD_UNKNOWN, also across repositories', async (t) => {
  const registry = await serve(t);
  for (const id of ['3f0b2f4e-0000-4000-8000-000000000000', 'not-a-uuid', '..']) {
    const res = await rawRequest(registry.address, 'GET', `/v2/test/repo/blobs/uploads/${id}`);
    assert.equal(res.status, 404, id);
    assert.equal(res.errorCode(), 'BLOB_UPLOAD_UNKNOWN', id);
  }
  const start = await rawRequest(registry.address, 'POST', '/v2/test/repo/blobs/uploads/');
  const id = String(start.headers['docker-upload-uuid']);
  const elsewhere = await rawRequest(registry.address, 'PATCH', `/v2/test/other/blobs/uploads/${id}`, { body: 'abc' });
  assert.equal(elsewhere.errorCode(), 'BLOB_UPLOAD_UNKNOWN');
});

test('invalid repository names are NAME_INVALID and never touch the disk outside the root', async (t) => {
  const root = await tempDir(t, 'root');
  const registry = await serve(t, { root });
  const names = ['../x', 'A/B', 'a/../../x', 'a//b', '-a', 'a/', '%2e%2e/x', 'a/_tags'];
  for (const name of names) {
    for (const [method, tail] of [['GET', 'manifests/latest'], ['POST', 'blobs/uploads/'], ['GET', 'tags/list']] as const) {
      const res = await rawRequest(registry.address, method, `/v2/${name}/${tail}`);
      assert.equal(res.status, 400, `${method} ${name}/${tail}`);
      assert.equal(res.errorCode(), 'NAME_INVALID', `${method} ${name}/${tail}`);
    }
  }
  assert.deepEqual(await readdir(join(root, 'repositories')), []);
  assert.deepEqual(await readdir(join(root, 'uploads')), []);
});

test('oversized bodies get 413 with error JSON: manifests over 4 MiB, blobs over --max-body', async (t) => {
  const registry = await serve(t, { maxBlobBytes: 1024 });
  const huge = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
  const manifest = await putManifest(registry.address, 'big/one', 'v1', huge, OCI_MANIFEST);
  assert.equal(manifest.status, 413);
  assert.equal(manifest.errorCode(), 'SIZE_INVALID');

  const blob = await pushBlob(registry.address, 'big/one', randomBytes(2048));
  assert.equal(blob.status, 413);
  assert.equal(blob.errorCode(), 'SIZE_INVALID');
  assert.equal((await pushBlob(registry.address, 'big/one', randomBytes(1000))).status, 201);
});

test('chunked uploads: in-order chunks assemble, out-of-order is 416, status GET reports the range', async (t) => {
  const registry = await serve(t);
  const bytes = randomBytes(3000);
  const start = await rawRequest(registry.address, 'POST', '/v2/test/chunks/blobs/uploads/', { headers: { 'Content-Length': '0' } });
  assert.equal(start.status, 202);
  let location = String(start.headers.location);
  const first = await rawRequest(registry.address, 'PATCH', location, {
    headers: { 'Content-Range': '0-999', 'Content-Type': 'application/octet-stream' },
    body: bytes.subarray(0, 1000),
  });
  assert.equal(first.status, 202);
  assert.equal(first.headers.range, '0-999');
  location = String(first.headers.location);
  const skip = await rawRequest(registry.address, 'PATCH', location, { headers: { 'Content-Range': '2000-2999' }, body: bytes.subarray(2000) });
  assert.equal(skip.status, 416);
  const status = await rawRequest(registry.address, 'GET', location);
  assert.equal(status.status, 204);
  assert.equal(status.headers.range, '0-999');
  const second = await rawRequest(registry.address, 'PATCH', location, { headers: { 'Content-Range': '1000-1999' }, body: bytes.subarray(1000, 2000) });
  assert.equal(second.headers.range, '0-1999');
  const done = await rawRequest(registry.address, 'PUT', `${location}?digest=${digestOf(bytes)}`, { headers: { 'Content-Range': '2000-2999' }, body: bytes.subarray(2000) });
  assert.equal(done.status, 201);
  const got = await rawRequest(registry.address, 'GET', `/v2/test/chunks/blobs/${digestOf(bytes)}`);
  assert.equal(digestOf(got.body), digestOf(bytes));
  const ranged = await rawRequest(registry.address, 'GET', `/v2/test/chunks/blobs/${digestOf(bytes)}`, { headers: { Range: 'bytes=10-19' } });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers['content-range'], 'bytes 10-19/3000');
  assert.deepEqual(ranged.body, bytes.subarray(10, 20));
});

test('tags list pages with n/last and Link; referrers filter by artifactType', async (t) => {
  const registry = await serve(t);
  const image = await makeImage();
  await pushImage(registry.address, 'test/tags', image, 'a');
  for (const tag of ['b', 'c', 'd']) assert.equal((await putManifest(registry.address, 'test/tags', tag, image.manifest, image.mediaType)).status, 201);
  const page = await rawRequest(registry.address, 'GET', '/v2/test/tags/tags/list?n=2');
  assert.deepEqual(page.json(), { name: 'test/tags', tags: ['a', 'b'] });
  assert.equal(page.headers.link, '</v2/test/tags/tags/list?n=2&last=b>; rel="next"');
  const next = await rawRequest(registry.address, 'GET', '/v2/test/tags/tags/list?n=2&last=b');
  assert.deepEqual(next.json(), { name: 'test/tags', tags: ['c', 'd'] });
  assert.equal(next.headers.link, undefined);

  const empty = Buffer.from('{}');
  assert.equal((await pushBlob(registry.address, 'test/tags', empty)).status, 201);
  const sig = (artifactType: string) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(empty), size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(empty), size: 2 }],
        subject: { mediaType: OCI_MANIFEST, digest: image.digest, size: image.manifest.length },
      }),
    );
  for (const type of ['application/x-sig', 'application/x-sbom']) {
    const res = await putManifest(registry.address, 'test/tags', digestOf(sig(type)), sig(type), OCI_MANIFEST);
    assert.equal(res.status, 201);
    assert.equal(res.headers['oci-subject'], image.digest);
  }
  const all = (await rawRequest(registry.address, 'GET', `/v2/test/tags/referrers/${image.digest}`)).json() as { manifests: Array<{ artifactType: string }> };
  assert.deepEqual(all.manifests.map((m) => m.artifactType).sort(), ['application/x-sbom', 'application/x-sig']);
  const filtered = await rawRequest(registry.address, 'GET', `/v2/test/tags/referrers/${image.digest}?artifactType=application/x-sig`);
  assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
  assert.deepEqual((filtered.json() as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [digestOf(sig('application/x-sig'))]);
});

test('concurrent pushes of the same blob all succeed and store it once', async (t) => {
  const root = await tempDir(t, 'root');
  const registry = await serve(t, { root });
  const bytes = randomBytes(256 * 1024);
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pushBlob(registry.address, `test/same${i % 2}`, bytes)));
  assert.deepEqual(results.map((r) => r.status), Array(8).fill(201));
  assert.deepEqual(await storedBlobs(root), [digestOf(bytes)]);
  const stored = await readFile(join(root, 'blobs', 'sha256', digestOf(bytes).slice(7, 9), digestOf(bytes).slice(7)));
  assert.equal(digestOf(stored), digestOf(bytes));
});

test('a full disk is a clear 500 and leaves no partial blob', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to mount a small tmpfs');
    return;
  }
  const mountPoint = await mkdtemp(join(tmpdir(), 'tsko-reg-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint]);
  } catch {
    await rm(mountPoint, { recursive: true, force: true });
    t.skip('cannot mount a tmpfs here');
    return;
  }
  const registry = await startRegistryServer({ addr: '127.0.0.1:0', root: mountPoint });
  // One hook, in order: the server lets go of its files, then the mount goes, then the directory.
  t.after(async () => {
    await registry.close();
    execFileSync('umount', ['-l', mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });
  const big = randomBytes(1024 * 1024);
  for (const res of [
    await pushBlob(registry.address, 'test/full', big),
    await rawRequest(registry.address, 'POST', `/v2/test/full/blobs/uploads/?digest=${digestOf(big)}`, { body: big }),
  ]) {
    assert.equal(res.status, 500);
    assert.match(String((res.json() as { errors: Array<{ message: string }> }).errors[0]?.message), /full|no space/i);
  }
  assert.deepEqual(await storedBlobs(mountPoint), []);
  // The space is given back: a small blob still fits afterwards.
  const small = randomBytes(1024);
  assert.equal((await pushBlob(registry.address, 'test/full', small)).status, 201);
  assert.deepEqual(await storedBlobs(mountPoint), [digestOf(small)]);
});

test('binding a busy port fails with one line naming the address', async (t) => {
  const first = await serve(t);
  await assert.rejects(
    startRegistryServer({ addr: first.address, root: await tempDir(t, 'other') }),
    (err: unknown) => err instanceof TskoError && err.code === 'REGISTRY_SERVE' && err.message.includes(first.address) && !err.message.includes('\n'),
  );
});

test('tsko registry serve: prints where it serves, exits cleanly on SIGTERM; a second serve on the port exits non-zero', async (t) => {
  const root = await tempDir(t, 'cli');
  const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.js');
  const holder = await serve(t);
  const busy = spawn(process.execPath, [main, 'registry', 'serve', '--addr', holder.address, '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] });
  const busyResult = await childResult(busy, 20_000);
  assert.notEqual(busyResult.code, 0);
  const port = holder.address.split(':')[1]!;
  assert.match(busyResult.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
  assert.equal(busyResult.stdout, '');

  const child = spawn(process.execPath, [main, 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await firstStderrLine(child, 20_000);
  assert.match(line, /^tsko registry: serving http:\/\/127\.0\.0\.1:\d+ \(root .+\)$/);
  const address = /http:\/\/([^ ]+)/.exec(line)![1]!;
  assert.equal((await rawRequest(address, 'GET', '/v2/')).status, 200);
  child.kill('SIGTERM');
  const result = await childResult(child, 20_000);
  assert.equal(result.code, 0);
});

function firstStderrLine(child: ReturnType<typeof spawn>, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no stderr line within ${ms} ms: ${text}`)), ms);
    child.stderr!.on('data', (c: Buffer) => {
      text += c.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(text.slice(0, nl));
      }
    });
  });
}

function childResult(child: ReturnType<typeof spawn>, ms: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child still running after ${ms} ms`));
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // Let the pipes drain.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

test('a non-loopback bind is refused without --allow-remote, and without auth even with it', async (t) => {
  const root = await tempDir(t, 'remote');
  await assert.rejects(startRegistryServer({ addr: '0.0.0.0:0', root }), (err: unknown) => err instanceof TskoError && /allow-remote/.test(err.message));
  await assert.rejects(
    startRegistryServer({ addr: '0.0.0.0:0', root, allowRemote: true }),
    (err: unknown) => err instanceof TskoError && /without authentication/.test(err.message),
  );
});

test('Basic auth from an htpasswd file: 401 challenge without or with wrong credentials, access with the right ones', async (t) => {
  const work = await tempDir(t, 'auth');
  const htpasswd = `alice:${bcrypt.hashSync('s3cret-pass', 4)}\n`;
  await writeFile(join(work, 'htpasswd'), htpasswd);
  const registry = await serve(t, { auth: parseHtpasswd(htpasswd) });
  const anonymous = await rawRequest(registry.address, 'GET', '/v2/');
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.errorCode(), 'UNAUTHORIZED');
  assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="/);
  const basic = (user: string, pass: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/', { headers: basic('alice', 'wrong') })).status, 401);
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/', { headers: basic('bob', 's3cret-pass') })).status, 401);
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/', { headers: basic('alice', 's3cret-pass') })).status, 200);

  // And a real client: skopeo with --dest-creds.
  const image = await makeImage();
  await writeOciLayout(join(work, 'src'), 'v1', { bytes: image.manifest, mediaType: image.mediaType }, [...image.layers, image.config]);
  await assert.rejects(skopeo(['copy', '--dest-tls-verify=false', `oci:${join(work, 'src')}:v1`, `docker://${registry.address}/auth/img:v1`], work));
  await skopeo(['copy', '--preserve-digests', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret-pass', `oci:${join(work, 'src')}:v1`, `docker://${registry.address}/auth/img:v1`], work);
  const head = await rawRequest(registry.address, 'HEAD', '/v2/auth/img/manifests/v1', { headers: { ...basic('alice', 's3cret-pass'), Accept: ALL_MANIFEST_TYPES } });
  assert.equal(head.headers['docker-content-digest'], image.digest);
});

test('token auth: Bearer <token> or the token as Basic password', async (t) => {
  const token = randomBytes(24).toString('hex');
  const registry = await serve(t, { auth: { kind: 'token', token } });
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/')).status, 401);
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/', { headers: { Authorization: 'Bearer nope' } })).status, 401);
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/', { headers: { Authorization: `Bearer ${token}` } })).status, 200);
  const basic = `Basic ${Buffer.from(`anyone:${token}`).toString('base64')}`;
  assert.equal((await rawRequest(registry.address, 'GET', '/v2/', { headers: { Authorization: basic } })).status, 200);
});

test('ensureEmbeddedRegistry starts one on a free port, reuses a running one, and refuses a foreign server', async (t) => {
  const root = await tempDir(t, 'ensure');
  // Find a free port by binding and releasing it.
  const probe = await startRegistryServer({ addr: '127.0.0.1:0', root });
  const addr = probe.address;
  await probe.close();

  const started = await ensureEmbeddedRegistry({ addr, root });
  t.after(() => started.close());
  assert.equal(started.started, true);
  assert.equal(started.address, addr);
  const reused = await ensureEmbeddedRegistry({ addr, root });
  assert.equal(reused.started, false);
  assert.equal(reused.url, `http://${addr}`);
  await reused.close();
  assert.equal((await rawRequest(addr, 'GET', '/v2/')).status, 200, 'closing a reused registry leaves it running');

  const foreign = createServer((_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => foreign.close(() => resolve())));
  const port = (foreign.address() as { port: number }).port;
  await assert.rejects(
    ensureEmbeddedRegistry({ addr: `127.0.0.1:${port}`, root }),
    (err: unknown) => err instanceof TskoError && err.code === 'REGISTRY_SERVE' && err.message.includes(`127.0.0.1:${port}`),
  );
});

test('defaultRegistryRoot follows XDG_CACHE_HOME, else ~/.cache', () => {
  assert.equal(defaultRegistryRoot({ XDG_CACHE_HOME: '/x/cache' }, '/home/u'), '/x/cache/tsko/registry');
  assert.equal(defaultRegistryRoot({}, '/home/u'), '/home/u/.cache/tsko/registry');
  assert.equal(defaultRegistryRoot({ XDG_CACHE_HOME: 'relative' }, '/home/u'), '/home/u/.cache/tsko/registry');
});

test('storage survives a restart: an image pushed to one server is served by the next on the same root', async (t) => {
  const root = await tempDir(t, 'persist');
  const image = await makeImage();
  const first = await startRegistryServer({ addr: '127.0.0.1:0', root });
  await pushImage(first.address, 'persist/img', image, 'v1');
  await first.close();
  const second = await serve(t, { root });
  const got = await rawRequest(second.address, 'GET', '/v2/persist/img/manifests/v1', { headers: { Accept: ALL_MANIFEST_TYPES } });
  assert.equal(digestOf(got.body), image.digest);
  const s = await stat(join(root, 'repositories', 'persist', 'img', '_tags', 'v1'));
  assert.ok(s.isFile());
  assert.equal(createHash('sha256').update(got.body).digest('hex'), image.digest.slice(7));
});

test('tsko registry serve loads only what serving needs: no undici (not even Node\'s own), ink, react or Kubernetes client', async (t) => {
  const root = await tempDir(t, 'modules');
  const probe = join(import.meta.dirname, '..', 'fixtures', 'registry', 'serve-probe.js');
  const child = spawn(process.execPath, [probe, 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', root], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const line = await firstStderrLine(child, 20_000);
  const address = /http:\/\/(\S+)/.exec(line)?.[1];
  assert.ok(address, line);
  // Serve a push and a pull first, so the upload, commit and download paths have loaded too.
  const image = await makeImage();
  await pushImage(address, 'probe/app', image, 'v1');
  const got = await rawRequest(address, 'GET', `/v2/probe/app/blobs/${digestOf(image.layers[0]!)}`);
  assert.equal(digestOf(got.body), digestOf(image.layers[0]!));

  const report = new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no report within 10 s: ${out}`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.slice(0, out.indexOf('\n')));
      }
    });
  });
  child.stdin!.write('report\n');
  const { modules, internal } = JSON.parse(await report) as { modules: string[]; internal: string[] };
  assert.deepEqual(internal.filter((m) => /undici|websocket/i.test(m)), [], "Node's bundled undici was loaded (an ESM import of node:http does that)");
  const packages = new Set(modules.map((m) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m)?.[1]).filter((p) => p !== undefined));
  assert.deepEqual([...packages], ['commander'], 'npm packages loaded');
  const ours = modules.filter((m) => !m.includes('/node_modules/')).map((m) => m.replace(/^.*\/dist\//, ''));
  const outside = ours.filter(
    (m) => !m.startsWith('src/registry/server/') && !['test/fixtures/registry/serve-probe.js', 'src/cli/registry.js', 'src/cli/registry-server.js', 'src/errors.js', 'src/redact.js', 'src/abort.js', 'src/net/loopback.js', 'src/atomic-file.js'].includes(m),
  );
  assert.deepEqual(outside, [], 'modules of ours outside the server');
  child.kill('SIGTERM');
});

test('blobs larger than the 1 MiB read buffer: whole, ranges across buffer boundaries, suffix, HEAD, and 20 at once', async (t) => {
  const registry = await serve(t);
  const blob = randomBytes(3 * 1024 * 1024 + 12345);
  assert.equal((await pushBlob(registry.address, 'big/get', blob)).status, 201);
  const path = `/v2/big/get/blobs/${digestOf(blob)}`;
  const whole = await rawRequest(registry.address, 'GET', path);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers['content-length'], String(blob.length));
  assert.equal(digestOf(whole.body), digestOf(blob));
  const ranges: Array<[string, number, number]> = [
    ['bytes=1048570-2097160', 1048570, 2097160],
    ['bytes=5-', 5, blob.length - 1],
    ['bytes=-1048577', blob.length - 1048577, blob.length - 1],
    ['bytes=0-0', 0, 0],
  ];
  for (const [header, start, end] of ranges) {
    const res = await rawRequest(registry.address, 'GET', path, { headers: { Range: header } });
    assert.equal(res.status, 206, header);
    assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${blob.length}`, header);
    assert.deepEqual(res.body, blob.subarray(start, end + 1), header);
  }
  const head = await rawRequest(registry.address, 'HEAD', path);
  assert.equal(head.headers['content-length'], String(blob.length));
  assert.equal(head.body.length, 0);
  const many = await Promise.all(Array.from({ length: 20 }, () => rawRequest(registry.address, 'GET', path)));
  assert.deepEqual(many.map((r) => digestOf(r.body)), Array(20).fill(digestOf(blob)));
});
