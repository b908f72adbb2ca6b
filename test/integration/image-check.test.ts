// Proves the image-checking harness both passes and fails, independent of tsko's builder: a tiny Go
// server is packed into an OCI layout by hand, pushed to a real docker-registry with skopeo, and
// checked with skopeo + umoci + chroot; broken variants must be rejected.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import {
  checkImage,
  elfMachine,
  freePort,
  httpGet,
  readBundleConfig,
  runEntrypoint,
  skopeoCopyFromLayout,
  skopeoCopyToLayout,
  skopeoInspect,
  umociUnpack,
} from '../support/image-check.js';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { makeTempDir, withTempDir } from '../support/tmp.js';
import { runTsko } from '../support/tsko-cli.js';

const serverSource = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wd, _ := os.Getwd()
		fmt.Fprintf(w, "hello %s from %s as %d", os.Getenv("GREETING"), wd, os.Getuid())
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`;

const manifestType = 'application/vnd.oci.image.manifest.v1+json';
const indexType = 'application/vnd.oci.image.index.v1+json';
const hostArch = process.arch === 'x64' ? 'amd64' : process.arch;
const hostMachine = process.arch === 'arm64' ? 'aarch64' : 'x86-64';

function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function buildServer(dir: string, goarch?: string): Promise<string> {
  await writeFile(join(dir, 'go.mod'), 'module example.com/hello\n\ngo 1.22\n');
  await writeFile(join(dir, 'main.go'), serverSource);
  const out = join(dir, goarch === undefined ? 'server' : `server-${goarch}`);
  const env: Record<string, string> = { CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local' };
  if (goarch !== undefined) env.GOARCH = goarch;
  await execa('go', ['build', '-trimpath', '-o', out, '.'], { cwd: dir, env, timeout: 180_000 });
  return out;
}

/** An uncompressed tar holding the binary at app/server (0755) under an app/ directory. */
async function layerTar(binary: Buffer): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    tar.on('data', (chunk: unknown) => {
      chunks.push(chunk as Buffer);
    });
    tar.on('end', () => resolve(Buffer.concat(chunks)));
    tar.on('error', reject);
  });
  const mtime = new Date(0);
  tar.entry({ name: 'app/', type: 'directory', mode: 0o755, mtime });
  tar.entry({ name: 'app/server', mode: 0o755, mtime, size: binary.length }, binary);
  tar.finalize();
  return done;
}

interface ImageOptions {
  /** GOARCH of the binary; the host's by default. */
  arch?: string;
  /** Replaces the layer's real diff_id in the config, to make a broken image. */
  diffId?: string;
  user?: string;
  workingDir?: string;
}

interface Descriptor {
  digest: string;
  size: number;
}

async function writeBlob(layout: string, bytes: Buffer | string): Promise<Descriptor> {
  const digest = sha256(bytes);
  await mkdir(join(layout, 'blobs/sha256'), { recursive: true });
  await writeFile(join(layout, 'blobs/sha256', digest.slice('sha256:'.length)), bytes);
  return { digest, size: Buffer.byteLength(bytes) };
}

/** Writes the blobs of a one-layer image (layer, config, manifest); returns the manifest's descriptor. */
async function writeImage(layout: string, binary: Buffer, options: ImageOptions): Promise<Descriptor> {
  const tar = await layerTar(binary);
  const layer = await writeBlob(layout, gzipSync(tar));
  const config = await writeBlob(
    layout,
    JSON.stringify({
      architecture: options.arch ?? hostArch,
      os: 'linux',
      config: {
        Entrypoint: ['/app/server'],
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'GREETING=from-config'],
        User: options.user ?? '',
        WorkingDir: options.workingDir ?? '/',
      },
      rootfs: { type: 'layers', diff_ids: [options.diffId ?? sha256(tar)] },
      history: [{ created_by: 'image-check.test.ts' }],
    }),
  );
  return writeBlob(
    layout,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
}

async function writeIndexJson(layout: string, tag: string, mediaType: string, target: Descriptor): Promise<void> {
  const index = {
    schemaVersion: 2,
    mediaType: indexType,
    manifests: [{ mediaType, ...target, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
}

/** Writes a one-layer OCI image layout by hand and returns the manifest's digest. */
async function writeLayout(layout: string, binary: Buffer, tag: string, options: ImageOptions = {}): Promise<string> {
  const manifest = await writeImage(layout, binary, options);
  await writeIndexJson(layout, tag, manifestType, manifest);
  return manifest.digest;
}

/** Writes a layout whose tag names an image index with one image per architecture; returns its digest. */
async function writeMultiArchLayout(layout: string, tag: string, binaries: Record<string, Buffer>): Promise<string> {
  const manifests = [];
  for (const [arch, binary] of Object.entries(binaries)) {
    const manifest = await writeImage(layout, binary, { arch });
    manifests.push({ mediaType: manifestType, ...manifest, platform: { os: 'linux', architecture: arch } });
  }
  const index = await writeBlob(layout, JSON.stringify({ schemaVersion: 2, mediaType: indexType, manifests }));
  await writeIndexJson(layout, tag, indexType, index);
  return index.digest;
}

/** How many processes run the test server binary (its argv[0] is /app/server inside the chroot). */
async function serversRunning(): Promise<number> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const cmdlines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return cmdlines.filter((cmdline) => cmdline === '/app/server\0').length;
}

describe('image-check harness', () => {
  let work: string;
  let binary: string;
  let registry: DockerRegistry;
  let goodLayout: string;
  let goodDigest: string;

  before(async () => {
    work = await makeTempDir('image-check-test');
    const src = join(work, 'src');
    await mkdir(src);
    binary = await buildServer(src);
    registry = await startDockerRegistry();
    goodLayout = join(work, 'good');
    goodDigest = await writeLayout(goodLayout, await readFile(binary), 'v1', { user: '65532:65532', workingDir: '/app' });
  });
  after(async () => {
    await registry?.stop();
  });

  it('reads the CPU of an ELF binary and rejects a non-ELF file', async () => {
    assert.equal(await elfMachine(binary), hostMachine);
    await assert.rejects(elfMachine(join(work, 'src/main.go')), /not an ELF/);
  });

  it('pushes a hand-made image and checks it end to end, by tag and by digest', async (t) => {
    const repo = `${registry.host}/test/hello`;
    await skopeoCopyFromLayout(goodLayout, 'v1', `${repo}:v1`, { insecure: true });

    const byTag = await checkImage(`${repo}:v1`, { insecure: true, expectBody: 'hello from-config from /app as 65532', t });
    assert.equal(sha256(JSON.stringify(byTag.manifest)), goodDigest, 'the registry serves the manifest we wrote');
    assert.deepEqual((byTag.config as { config: { Entrypoint: string[] } }).config.Entrypoint, ['/app/server']);
    const served = await stat(join(byTag.rootfs, 'app/server'));
    assert.equal(served.mode & 0o777, 0o755);

    const byDigest = await checkImage(`${repo}@${goodDigest}`, { insecure: true, env: { GREETING: 'override' }, expectBody: /^hello override /, t });
    assert.match(byDigest.body, /as 65532$/);
  });

  it('inspects raw manifest and config the way a client would see them', async () => {
    const ref = `${registry.host}/test/inspect:v1`;
    await skopeoCopyFromLayout(goodLayout, 'v1', ref, { insecure: true });
    const manifest = (await skopeoInspect(ref, { raw: true, insecure: true })) as { mediaType: string };
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const config = (await skopeoInspect(ref, { raw: true, config: true, insecure: true })) as { rootfs: { diff_ids: string[] } };
    assert.equal(config.rootfs.diff_ids.length, 1);
    await assert.rejects(skopeoInspect(`${registry.host}/test/missing:v1`, { insecure: true }), /skopeo inspect/);
  });

  it('runs the entrypoint with the config user, working dir, env and PORT, and stops it', async () => {
    await withTempDir('bundle', async (dir) => {
      const bundle = join(dir, 'bundle');
      await umociUnpack(goodLayout, 'v1', bundle);
      const config = await readBundleConfig(bundle);
      assert.deepEqual(config.process.args, ['/app/server']);
      assert.ok(config.process.env.includes('GREETING=from-config'));
      assert.equal(config.process.cwd, '/app');
      assert.deepEqual(config.process.user, { uid: 65532, gid: 65532 });

      const port = await freePort();
      const running = await runEntrypoint(bundle, { port, env: { GREETING: 'there' } });
      try {
        assert.equal(await serversRunning(), 1);
        assert.equal((await httpGet(`http://127.0.0.1:${port}/`)).body, 'hello there from /app as 65532');
      } finally {
        await running.stop();
      }
      await assert.rejects(httpGet(`http://127.0.0.1:${port}/`, 1_000), 'the server is gone after stop()');
      assert.equal(await serversRunning(), 0);
    });
  });

  it('rejects an entrypoint that exits before serving, with its logs', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const address = blocker.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      await withTempDir('exit-bundle', async (dir) => {
        await umociUnpack(goodLayout, 'v1', join(dir, 'bundle'));
        await assert.rejects(runEntrypoint(join(dir, 'bundle'), { port, timeoutMs: 10_000 }), /exited \(1\)[^]*address already in use/);
      });
    } finally {
      blocker.close();
    }
  });

  it('makes umoci reject a config whose diff_id does not match the layer', async () => {
    const bad = join(work, 'bad-diffid');
    await writeLayout(bad, await readFile(binary), 'v1', { diffId: sha256('not the layer') });
    await withTempDir('bad-bundle', async (dir) => {
      await assert.rejects(umociUnpack(bad, 'v1', join(dir, 'bundle')), /diffid mismatch/);
    });
  });

  it('makes checkImage reject a body that does not match, and stops the server anyway', async (t) => {
    const ref = `${registry.host}/test/mismatch:v1`;
    await skopeoCopyFromLayout(goodLayout, 'v1', ref, { insecure: true });
    await assert.rejects(checkImage(ref, { insecure: true, expectBody: 'goodbye', t }), /does not match "goodbye"/);
    await assert.rejects(checkImage(ref, { insecure: true, expectBody: /^nope/, t }), /does not match \/\^nope\//);
    assert.equal(await serversRunning(), 0, 'a failed check still stops the entrypoint');
    await assert.rejects(checkImage(`${registry.host}/test/missing:v1`, { insecure: true, t }), /skopeo inspect/);
  });

  it('copies an image back out of the registry into a layout', async () => {
    const ref = `${registry.host}/test/roundtrip:v1`;
    await skopeoCopyFromLayout(goodLayout, 'v1', ref, { insecure: true });
    await withTempDir('roundtrip', async (dir) => {
      await skopeoCopyToLayout(ref, join(dir, 'layout'), 'pulled', { insecure: true });
      const index = JSON.parse(await readFile(join(dir, 'layout/index.json'), 'utf8')) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]?.digest, goodDigest);
    });
  });

  it('passes credentials to skopeo for a registry that requires them, and fails without', async (t) => {
    const secured = await startDockerRegistry({ auth: 'htpasswd' });
    t.after(() => secured.stop());
    const creds = `${secured.username ?? ''}:${secured.password ?? ''}`;
    const ref = `${secured.host}/test/private:v1`;
    await assert.rejects(skopeoCopyFromLayout(goodLayout, 'v1', ref, { insecure: true }), /unauthorized|authentication required/i);
    await skopeoCopyFromLayout(goodLayout, 'v1', ref, { insecure: true, creds });
    await assert.rejects(checkImage(ref, { insecure: true, t }), /unauthorized|authentication required/i);
    const checked = await checkImage(ref, { insecure: true, creds, expectBody: /^hello from-config /, t });
    assert.equal(sha256(JSON.stringify(checked.manifest)), goodDigest);
    const error = await checkImage(ref, { insecure: true, creds: `${secured.username ?? ''}:wrong-${secured.password ?? ''}`, t }).then(
      () => new Error('no rejection'),
      (err: unknown) => err as Error,
    );
    assert.doesNotMatch(error.message, new RegExp(`wrong-${secured.password ?? 'unset'}`), 'the password never reaches an error');
    assert.match(error.message, /<redacted>/);
  });

  it('checks the host platform of a multi-arch index, pushed and pulled with --all', async (t) => {
    const otherArch = hostArch === 'amd64' ? 'arm64' : 'amd64';
    const other = await buildServer(join(work, 'src'), otherArch);
    assert.equal(await elfMachine(other), otherArch === 'arm64' ? 'aarch64' : 'x86-64');
    const layout = join(work, 'multi');
    const indexDigest = await writeMultiArchLayout(layout, 'v1', {
      [hostArch]: await readFile(binary),
      [otherArch]: await readFile(other),
    });
    const ref = `${registry.host}/test/multi:v1`;
    await skopeoCopyFromLayout(layout, 'v1', ref, { insecure: true, all: true });

    // No user and WorkingDir "/" in this image: the chroot path, as root.
    const checked = await checkImage(ref, { insecure: true, expectBody: 'hello from-config from / as 0', t });
    const index = checked.manifest as { mediaType: string; manifests: { platform: { architecture: string } }[] };
    assert.equal(index.mediaType, indexType);
    assert.deepEqual(index.manifests.map((m) => m.platform.architecture).sort(), [hostArch, otherArch].sort());
    assert.equal((checked.config as { architecture: string }).architecture, hostArch);
    assert.equal(await elfMachine(join(checked.rootfs, 'app/server')), hostMachine);

    await withTempDir('multi-pull', async (dir) => {
      await skopeoCopyToLayout(ref, join(dir, 'layout'), 'all', { insecure: true, all: true });
      const pulled = JSON.parse(await readFile(join(dir, 'layout/index.json'), 'utf8')) as { manifests: { digest: string }[] };
      assert.equal(pulled.manifests[0]?.digest, indexDigest);
    });
  });
});

describe('runTsko', () => {
  it('returns a non-zero exit code instead of throwing', async () => {
    const result = await runTsko(['--no-such-flag'], { timeoutMs: 30_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /no-such-flag/);
  });
});
