// A new binary layer streamed to its registry while it is compressed (publish/streamed-uploads.ts):
// against the real Debian docker-registry and tsko's own registry server, each behind the fault
// proxy (which logs every request), the pushed image is pulled by skopeo and unpacked by umoci and
// the binary in it compared with the original; the registry's blob is compared with the layer
// file. Also: a registry that drops the connection mid-stream (the upload starts again from the
// layer file, same bytes), one that refuses a PATCH without Content-Range (the monolithic upload,
// and no stream is tried there again), and a blob the registry already holds (HEAD wins: the
// streamed session is cancelled, nothing is committed twice). Last, `tsko dev` itself on the
// remote path: saves stream, and the image pulled back runs the last save.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEventBus, type TskoEvent } from '../../src/events.js';
import { appendAppLayers } from '../../src/image/assemble.js';
import { builtinStaticBase } from '../../src/image/builtin-base.js';
import { LayerFiles } from '../../src/image/layer-files.js';
import type { LayerTap } from '../../src/image/layer-writer.js';
import { OCI_LAYER_GZIP } from '../../src/image/media-types.js';
import type { Layer } from '../../src/image/types.js';
import { binaryLayer, kodataLayer } from '../../src/publish/app-layers.js';
import { RegistryWriter } from '../../src/publish/registry-writer.js';
import { StreamedUploads } from '../../src/publish/streamed-uploads.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { Repository } from '../../src/registry/reference.js';
import { startRegistryServer, type RunningRegistry } from '../../src/registry/server/index.js';
import { type DockerRegistry, startDockerRegistry } from '../support/docker-registry.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { checkImage, readBundleConfig, skopeoCopyToLayout, umociUnpack } from '../support/image-check.js';
import { startDev } from '../support/dev-process.js';
import { helloCopy } from '../support/deploy-fixture.js';
import { freePort } from '../support/docker-registry.js';
import type { EventOf } from '../../src/events.js';
import { makeTempDir } from '../support/tmp.js';
import { runTsko } from '../support/tsko-cli.js';

const PLATFORM = { os: 'linux', architecture: 'amd64' };
const IMPORT_PATH = 'example.com/streamed/app';
/** Several 1 MiB gzip members and more than one PATCH body chunk; random bytes do not shrink. */
const BINARY_BYTES = 3 * 1024 * 1024 + 12_345;

interface Harness {
  proxy: FaultProxy;
  client: RegistryClient;
  streamed: StreamedUploads;
  writer: RegistryWriter;
  events: TskoEvent[];
  dir: string;
  layerFiles: LayerFiles;
}

async function harness(upstream: string, dir: string): Promise<Harness> {
  const proxy = await startFaultProxy({ upstream });
  const bus = createEventBus();
  const events: TskoEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const client = new RegistryClient({ events: bus, retry: { baseDelayMs: 20 } });
  const streamed = new StreamedUploads({ client, repositoryFor: () => ({ registry: proxy.host, repository: 'streamed/app' }) });
  const writer = new RegistryWriter({ client, streamed });
  await mkdir(join(dir, 'pkg'), { recursive: true });
  return { proxy, client, streamed, writer, events, dir, layerFiles: new LayerFiles(join(dir, 'layers')) };
}

async function closeHarness(h: Harness | undefined): Promise<void> {
  if (!h) return;
  await h.streamed.close();
  await h.client.close();
  await h.layerFiles.close();
  await h.proxy.stop();
}

/** What the go builder does for a new binary: the layer written with a tap (if any), then the image pushed. */
async function buildAndPush(h: Harness, binary: Buffer, tag: string, tap: LayerTap | undefined): Promise<{ layer: Layer; repository: Repository; digest: string }> {
  const binPath = join(h.dir, `app-${tag}`);
  await writeFile(binPath, binary);
  const base = await builtinStaticBase(PLATFORM);
  const [kodata, layer] = await Promise.all([
    kodataLayer(join(h.dir, 'pkg'), OCI_LAYER_GZIP, 0, 'gzip', h.layerFiles),
    binaryLayer(binPath, 'app', OCI_LAYER_GZIP, 'gzip', h.layerFiles, tap),
  ]);
  const image = appendAppLayers(base, { importPath: IMPORT_PATH, appName: 'app', platform: PLATFORM, kodataLayer: kodata, binaryLayer: layer, created: '1970-01-01T00:00:00Z' });
  const repository: Repository = { registry: h.proxy.host, repository: 'streamed/app' };
  const bus = createEventBus();
  bus.subscribe((e) => h.events.push(e));
  const written = await h.writer.writeImage(image, repository, [tag], { events: bus });
  assert.equal(written.digest, image.manifestDigest);
  return { layer, repository, digest: written.digest };
}

/** The blob the registry serves for the layer equals the layer file; skopeo + umoci unpack the binary as it was. */
async function assertPushedIntact(h: Harness, pushed: { layer: Layer; repository: Repository }, binary: Buffer, tag: string): Promise<void> {
  const fromRegistry = await h.client.getBlob(pushed.repository, pushed.layer.digest);
  assert.ok(pushed.layer.path, 'the layer was written to a file');
  assert.ok(fromRegistry.equals(await readFile(pushed.layer.path)), 'the registry holds exactly the layer file');
  const layout = join(h.dir, `layout-${tag}`);
  const bundle = join(h.dir, `bundle-${tag}`);
  await skopeoCopyToLayout(`docker://${h.proxy.host}/streamed/app:${tag}`, layout, tag, { insecure: true });
  await umociUnpack(layout, tag, bundle);
  const config = await readBundleConfig(bundle);
  const unpacked = await readFile(join(bundle, config.root.path, 'ko-app', 'app'));
  assert.ok(unpacked.equals(binary), 'the unpacked binary is the one that was layered');
}

/** Requests the proxy saw for the blob upload session(s), as `METHOD -> status`. */
function uploadRequests(h: Harness): string[] {
  return h.proxy.log.filter((line) => line.includes('/blobs/uploads/')).map((line) => line.replace(/ \/v2\/\S*/, ''));
}

/** Waits (bounded: 100 × 50 ms) until `check` holds; returns whether it did. */
async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return check();
}

function blobActions(h: Harness, digest: string): string[] {
  return h.events.flatMap((e) => (e.type === 'blob' && e.digest === digest ? [e.action] : []));
}

function suite(name: string, start: (dir: string) => Promise<{ url: string; stop(): Promise<void> }>): void {
  describe(`streamed upload of a new layer: ${name}`, () => {
    let registry: { url: string; stop(): Promise<void> };
    let dir: string;
    before(async () => {
      dir = await makeTempDir('streamed-upload');
      registry = await start(dir);
    });
    after(async () => {
      await registry?.stop();
    });

    it('sends the layer in one streamed PATCH while it is written, closes it with PUT ?digest=, and the image is intact', async (t) => {
      const h = await harness(registry.url, await makeTempDir('streamed-a', t));
      t.after(() => closeHarness(h));
      const binary = randomBytes(BINARY_BYTES);
      const tap = h.streamed.tap(IMPORT_PATH, 'linux/amd64');
      assert.ok(tap, 'a remote registry gets a stream');
      const pushed = await buildAndPush(h, binary, 'v1', tap);
      assert.deepEqual(blobActions(h, pushed.layer.digest), ['pushed']);
      // The binary layer's session: POST, one PATCH (202), PUT with the digest and no body (201).
      // The other blobs (base, kodata, config) went the monolithic way: POST, PUT.
      const log = uploadRequests(h);
      assert.equal(log.filter((l) => l.startsWith('PATCH')).length, 1, log.join('\n'));
      assert.ok(log.includes('PATCH -> 202'), log.join('\n'));
      // The streamed session (the PATCH's path) is the one closed by a PUT without a body of its own.
      const session = /^PATCH (\S+) -> 202$/.exec(h.proxy.log.find((l) => l.startsWith('PATCH')) ?? '')?.[1];
      assert.ok(session, h.proxy.log.join('\n'));
      assert.ok(h.proxy.log.includes(`PUT ${session} -> 201`), h.proxy.log.join('\n'));
      await assertPushedIntact(h, pushed, binary, 'v1');
    });

    it('restarts the upload from the layer file when the registry drops the connection mid-stream', async (t) => {
      const h = await harness(registry.url, await makeTempDir('streamed-b', t));
      t.after(() => closeHarness(h));
      h.proxy.script.push({ match: /^PATCH /, fault: { kind: 'reset' } });
      const binary = randomBytes(BINARY_BYTES);
      const pushed = await buildAndPush(h, binary, 'v2', h.streamed.tap(IMPORT_PATH, 'linux/amd64'));
      assert.equal(h.proxy.injected, 1, 'the PATCH was dropped');
      assert.deepEqual(blobActions(h, pushed.layer.digest), ['pushed']);
      const log = uploadRequests(h);
      assert.ok(log.includes('PATCH -> reset'), log.join('\n'));
      assert.equal(log.filter((l) => l.startsWith('PATCH')).length, 1, 'no second stream: the retry uploads the file');
      await assertPushedIntact(h, pushed, binary, 'v2');
      // A dropped connection is not a refusal: the next layer streams again.
      assert.ok(h.streamed.tap(IMPORT_PATH, 'linux/amd64'), 'streaming stays on after a network failure');
    });

    it('falls back to the monolithic upload where a PATCH without Content-Range is refused, and stops streaming there', async (t) => {
      const h = await harness(registry.url, await makeTempDir('streamed-c', t));
      t.after(() => closeHarness(h));
      h.proxy.script.push({ match: /^PATCH /, fault: { kind: 'status', status: 416 } });
      const binary = randomBytes(BINARY_BYTES);
      const pushed = await buildAndPush(h, binary, 'v3', h.streamed.tap(IMPORT_PATH, 'linux/amd64'));
      assert.equal(h.proxy.injected, 1);
      assert.deepEqual(blobActions(h, pushed.layer.digest), ['pushed']);
      await assertPushedIntact(h, pushed, binary, 'v3');
      assert.equal(h.streamed.tap(IMPORT_PATH, 'linux/amd64'), undefined, 'no more streams to a registry that refused one');
    });

    it('lets HEAD win for a layer the registry already holds: the stream is cancelled and nothing is committed again', async (t) => {
      const h = await harness(registry.url, await makeTempDir('streamed-d', t));
      t.after(() => closeHarness(h));
      const binary = randomBytes(BINARY_BYTES);
      const first = await buildAndPush(h, binary, 'v4', undefined);
      assert.deepEqual(blobActions(h, first.layer.digest), ['pushed']);
      // The same binary again (a daemon restarted, or a revert), with a stream and a writer that
      // has not seen the blob: its HEAD finds it.
      const writer = new RegistryWriter({ client: h.client, streamed: h.streamed });
      const again = { ...h, writer, events: [] as TskoEvent[] };
      const logFrom = h.proxy.log.length;
      const tap = h.streamed.tap(IMPORT_PATH, 'linux/amd64');
      // The session is open before the layer is written (as in the dev loop, where go build ends first).
      assert.ok(await eventually(() => h.proxy.log.slice(logFrom).some((l) => l.startsWith('POST') && l.endsWith('-> 202'))), 'the stream opened a session');
      const second = await buildAndPush(again, binary, 'v5', tap);
      assert.equal(second.layer.digest, first.layer.digest);
      assert.deepEqual(blobActions(again, second.layer.digest), ['existing']);
      const later = () => h.proxy.log.slice(logFrom).filter((l) => l.includes('/blobs/uploads/'));
      assert.ok(await eventually(() => later().some((l) => l.startsWith('DELETE'))), `the streamed session was cancelled:\n${later().join('\n')}`);
      // The session cancelled is the streamed one, and it was never closed with a PUT.
      const session = /^POST \S+ -> 202$/.test(later()[0] ?? '') ? later().find((l) => l.startsWith('DELETE'))?.split(' ')[1] : undefined;
      assert.ok(session, later().join('\n'));
      assert.ok(!h.proxy.log.some((l) => l.startsWith(`PUT ${session} `)), 'no PUT ?digest= for the layer the registry had');
      await assertPushedIntact(again, second, binary, 'v5');
    });
  });
}

suite('Debian docker-registry', async () => {
  const registry: DockerRegistry = await startDockerRegistry();
  return { url: registry.url, stop: () => registry.stop() };
});

suite('tsko registry serve', async (dir) => {
  const registry: RunningRegistry = await startRegistryServer({ addr: '127.0.0.1:0', root: join(dir, 'registry-root') });
  return { url: registry.url, stop: () => registry.close() };
});

describe('tsko dev on the remote path: saves stream their binary layer, and the registry serves what was built', () => {
  // The saves' layers are also made with the previous layer's gzip members (member-reuse.ts, on for
  // gzip in the dev loop): a wrong member would fail skopeo's digest check or umoci's unpack here.
  it('a rebuilt binary goes up in a streamed PATCH, its session closed by PUT; the pushed image runs the new version', { timeout: 240_000 }, async (t) => {
    const registry = await startDockerRegistry();
    t.after(() => registry.stop());
    const proxy = await startFaultProxy({ upstream: registry.url });
    t.after(() => proxy.stop());
    const hello = await helloCopy('streamed-dev', t);
    const original = await readFile(join(hello.dir, 'main.go'), 'utf8');
    const dev = startDev(['--port', String(await freePort()), '--layer-compression', 'gzip'], { cwd: hello.dir, env: { ...hello.env, KO_DOCKER_REPO: `${proxy.host}/dev` } });
    t.after(async () => {
      if (dev.child.exitCode === null) {
        dev.child.kill('SIGKILL');
        await dev.exited(5000);
      }
    });
    type End = EventOf<'iteration.end'>;
    const settle = async (from: number): Promise<End> =>
      (await dev.waitFor((e) => e.type === 'iteration.end' && e.result !== 'cancelled', { from, timeoutMs: 90_000 })) as End;
    const first = await settle(0);
    assert.equal(first.result, 'deployed', dev.stderr());
    // The first build of a process is not streamed (the registry may have it already).
    assert.ok(!proxy.log.some((l) => l.startsWith('PATCH')), proxy.log.join('\n'));

    let end = first;
    for (const version of ['hello v2', 'hello v3']) {
      const mark = dev.events.length;
      const logFrom = proxy.log.length;
      const path = join(hello.dir, 'main.go');
      await writeFile(`${path}.tmp`, original.replace('hello v1', version));
      await rename(`${path}.tmp`, path);
      end = await settle(mark);
      assert.equal(end.result, 'deployed', dev.stderr());
      const uploads = proxy.log.slice(logFrom).filter((l) => l.includes('/blobs/uploads/'));
      const patch = /^PATCH (\S+) -> 202$/.exec(uploads.find((l) => l.startsWith('PATCH')) ?? '')?.[1];
      assert.ok(patch, `save ${version}: the binary layer was streamed:\n${uploads.join('\n')}`);
      assert.ok(uploads.includes(`PUT ${patch} -> 201`), `save ${version}: its session was closed:\n${uploads.join('\n')}`);
    }
    assert.ok(end.reference, JSON.stringify(end));
    // skopeo pulls it, umoci unpacks it, and its entrypoint answers with the last save's text.
    await checkImage(end.reference, { insecure: true, expectBody: /hello v3/, t });
  });
});

describe('tsko build, one command after another: a relinked binary streams, and its gzip members are kept for the next', () => {
  it('streams only a binary go relinked, reuses the kept members, and the registry holds images that run', { timeout: 240_000 }, async (t) => {
    const registry = await startDockerRegistry();
    t.after(() => registry.stop());
    const proxy = await startFaultProxy({ upstream: registry.url });
    t.after(() => proxy.stop());
    const hello = await helloCopy('streamed-build', t);
    const original = await readFile(join(hello.dir, 'main.go'), 'utf8');
    const env = { ...hello.env, KO_DOCKER_REPO: `${proxy.host}/build` };
    const build = async (version: string) => {
      await writeFile(join(hello.dir, 'main.go'), original.replace('hello v1', version));
      const logFrom = proxy.log.length;
      const run = await runTsko(['build', '--sbom=none', '.'], { cwd: hello.dir, env });
      assert.equal(run.code, 0, run.stderr);
      return { reference: run.stdout.trim(), uploads: proxy.log.slice(logFrom).filter((l) => l.includes('/blobs/uploads/')) };
    };
    const output = join(hello.env.XDG_CACHE_HOME as string, 'tsko', 'bin', 'example.com', 'hello', 'linux-amd64', 'hello');
    const kept = join(output, '..', '.hello.members');

    // The first build: nothing to say the layer is new (the registry may hold it), so no stream.
    const first = await build('hello v1');
    assert.ok(!first.uploads.some((l) => l.startsWith('PATCH')), first.uploads.join('\n'));
    const keptIndex = JSON.parse(await readFile(join(kept, 'index.json'), 'utf8')) as { file: string; members: unknown[] };
    assert.ok(keptIndex.members.length >= 8, 'the layer and its member index are kept beside the binary');
    assert.match(keptIndex.file, /^[0-9a-f]{64}\.layer$/);

    // An edit: go relinks the binary, so its layer goes up while it is compressed, made from the
    // kept members where blocks did not change; skopeo, umoci and the entrypoint check the result.
    const second = await build('hello v2');
    const patch = /^PATCH (\S+) -> 202$/.exec(second.uploads.find((l) => l.startsWith('PATCH')) ?? '')?.[1];
    assert.ok(patch, `the relinked binary was streamed:\n${second.uploads.join('\n')}`);
    assert.ok(second.uploads.includes(`PUT ${patch} -> 201`), second.uploads.join('\n'));
    await checkImage(second.reference, { insecure: true, expectBody: /hello v2/, t });
    const secondIndex = JSON.parse(await readFile(join(kept, 'index.json'), 'utf8')) as { file: string };
    assert.notEqual(secondIndex.file, keptIndex.file, 'the new layer is kept in place of the old');

    // The same sources again: go does not relink, nothing is streamed or uploaded, same image.
    const third = await build('hello v2');
    assert.deepEqual(third.uploads, [], 'no upload for an unchanged binary');
    assert.equal(third.reference, second.reference);

    // A kept layer whose bytes are not the ones indexed (same name and size, other bytes) is never
    // copied from: its members would make a layer that does not unpack.
    const keptFile = join(kept, secondIndex.file);
    const size = (await readFile(keptFile)).length;
    await rm(keptFile, { force: true });
    await writeFile(keptFile, randomBytes(size));
    const fourth = await build('hello v4');
    await checkImage(fourth.reference, { insecure: true, expectBody: /hello v4/, t });
  });
});
