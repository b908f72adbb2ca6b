// --layer-compression end to end: `tsko build` pushes examples/hello to Debian's docker-registry
// with parallel gzip and with zstd, and real tools take it from there: skopeo reads and copies
// it, umoci unpacks it checking every layer against its diff_id, and the entrypoint serves.
// Debian's umoci (0.4.7) cannot unpack zstd layers, so for zstd skopeo decodes them (verifying
// their digests) and writes gzip for umoci: what umoci checks is still the tar our zstd held.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage, skopeoCopyToLayout, skopeoInspect } from '../support/image-check.js';
import { makeTempDir, withTempDir } from '../support/tmp.js';
import { repoRoot, runTsko, type TskoRunResult } from '../support/tsko-cli.js';

const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
/** The 10-byte header zlib writes for every BestSpeed gzip member (mtime 0, XFL 4, OS Unix). */
const MEMBER_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);

let registry: DockerRegistry;
let cacheHome: string;

function build(args: string[], extra: Record<string, string | undefined> = {}): Promise<TskoRunResult> {
  const env = { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${registry.host}/test`, SOURCE_DATE_EPOCH: undefined, ...extra };
  return runTsko(['build', ...args], { env, cwd: repoRoot });
}

/** The one reference a successful build printed, without its tag (skopeo refuses name:tag@digest). */
function builtRef(result: TskoRunResult): string {
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, result.stdout);
  return (lines[0] as string).replace(/:[\w.-]+@/, '@');
}

interface Manifest {
  mediaType: string;
  layers: { mediaType: string; digest: string; size: number }[];
}

/** A blob straight from the registry's HTTP API, checked against its digest. */
async function blob(ref: string, digest: string): Promise<Buffer> {
  const repo = ref.slice(registry.host.length + 1, ref.indexOf('@'));
  const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(response.status, 200);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest);
  return bytes;
}

function count(haystack: Buffer, needle: Buffer): number {
  let n = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) n += 1;
  return n;
}

describe('--layer-compression', () => {
  before(async () => {
    registry = await startDockerRegistry();
    cacheHome = await makeTempDir('compress-cache');
  });
  after(async () => {
    await registry?.stop();
  });

  it('gzip: the binary layer is one gzip member per MiB, and skopeo, umoci and the entrypoint take it', async (t) => {
    const ref = builtRef(await build(['./examples/hello', '--layer-compression', 'gzip', '-B', '--tags', 'gzip']));
    const checked = await checkImage(ref, { insecure: true, expectBody: 'hello v1\n', t });
    const manifest = checked.manifest as Manifest;
    const binaryLayer = manifest.layers.at(-1);
    assert.ok(binaryLayer);
    assert.equal(binaryLayer.mediaType, OCI_LAYER_GZIP);
    const bytes = await blob(ref, binaryLayer.digest);
    const tar = gunzipSync(bytes);
    const diffIds = (checked.config as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
    assert.equal(diffIds.at(-1), `sha256:${createHash('sha256').update(tar).digest('hex')}`);
    assert.ok(tar.length > 4 * 1024 * 1024, `the hello binary's tar is several MiB (${tar.length})`);
    assert.equal(count(bytes, MEMBER_HEADER), Math.ceil(tar.length / (1024 * 1024)), 'a member per 1 MiB block of the tar');
    assert.ok((await readFile(join(checked.rootfs, 'ko-app/hello'))).length > 4 * 1024 * 1024);
  });

  it('zstd: OCI zstd layers skopeo copies and inspects as they are, and that decode to the diff_ids the entrypoint runs from', async (t) => {
    const ref = builtRef(await build(['./examples/hello', '--layer-compression', 'zstd', '-B', '--tags', 'zstd']));
    const manifest = (await skopeoInspect(ref, { insecure: true, raw: true })) as Manifest;
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const [base, ...app] = manifest.layers;
    assert.equal(base?.mediaType, OCI_LAYER_GZIP, "the base's own layer keeps its compression");
    assert.deepEqual(app.map((l) => l.mediaType), [OCI_LAYER_ZSTD, OCI_LAYER_ZSTD], 'kodata and binary layers are zstd');
    const binary = await blob(ref, (app[1] as { digest: string }).digest);
    assert.equal(binary.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');
    const inspected = (await skopeoInspect(ref, { insecure: true })) as { Layers: string[] };
    assert.deepEqual(inspected.Layers, manifest.layers.map((l) => l.digest));

    await withTempDir('zstd-layout', async (dir) => {
      // Untouched: skopeo fetches and verifies each blob and writes the same manifest.
      await skopeoCopyToLayout(ref, join(dir, 'layout'), 'zstd', { insecure: true });
      const index = JSON.parse(await readFile(join(dir, 'layout/index.json'), 'utf8')) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]?.digest, ref.slice(ref.indexOf('@') + 1));
      const { stdout } = await execa('skopeo', ['inspect', '--raw', `oci:${join(dir, 'layout')}:zstd`], { timeout: 60_000 });
      const local = JSON.parse(stdout) as Manifest;
      assert.deepEqual(local.layers.map((l) => l.mediaType), manifest.layers.map((l) => l.mediaType));
    });

    // umoci checks the tar skopeo decoded from our zstd against the config's diff_ids, then it runs.
    const checked = await checkImage(ref, { insecure: true, recompressGzip: true, expectBody: 'hello v1\n', t });
    assert.deepEqual(checked.manifest, manifest);
    assert.ok((await readFile(join(checked.rootfs, 'ko-app/hello'))).length > 4 * 1024 * 1024);
  });

  it('zstd on a Docker schema 2 base fails with one line that says why and what to do', async () => {
    const seed = builtRef(await build(['./examples/hello', '-B', '--tags', 'seed']));
    const policy = join(await makeTempDir('compress-policy'), 'policy.json');
    await writeFile(policy, '{"default":[{"type":"insecureAcceptAnything"}]}');
    await execa('skopeo', ['--policy', policy, 'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--format', 'v2s2', `docker://${seed}`, `docker://${registry.host}/bases/docker:latest`], { timeout: 120_000 });

    const dockerBase = { KO_DEFAULTBASEIMAGE: `${registry.host}/bases/docker:latest` };
    const refused = await build(['./examples/hello', '--layer-compression', 'zstd', '-B', '--tags', 'refused'], dockerBase);
    assert.notEqual(refused.code, 0);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^tsko: zstd layers need an OCI base image, and \S+\/bases\/docker:latest is a Docker schema 2 image \(its format has no zstd layer type\)$/m);
    assert.match(refused.stderr, /^hint: use --layer-compression gzip/m);

    const gzip = builtRef(await build(['./examples/hello', '--layer-compression', 'gzip', '-B', '--tags', 'on-docker'], dockerBase));
    const manifest = (await skopeoInspect(gzip, { insecure: true, raw: true })) as Manifest;
    assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  });
});
