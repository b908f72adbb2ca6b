// Multi-platform `tsko build` end to end: the real CLI and Go toolchain, Debian's docker-registry,
// and skopeo + umoci to read the index, each child's config and each binary's ELF header (an arm64
// binary cannot run here; its header says what it is built for).
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage, elfMachine, skopeoCopyToLayout, skopeoInspect, umociUnpack } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko, type TskoRunResult } from '../support/tsko-cli.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const BASE_NAME = 'org.opencontainers.image.base.name';
const BASE_DIGEST = 'org.opencontainers.image.base.digest';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
}
interface IndexJson {
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}
interface ManifestJson {
  mediaType: string;
  annotations?: Record<string, string>;
  layers: Descriptor[];
}

let registry: DockerRegistry;
let cacheHome: string;

function build(args: string[], extra: Record<string, string | undefined> = {}): Promise<TskoRunResult> {
  return runTsko(['build', ...args], {
    env: { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${registry.host}/multi`, SOURCE_DATE_EPOCH: undefined, GOOS: undefined, GOARCH: undefined, ...extra },
    cwd: repoRoot,
    timeoutMs: 300_000,
  });
}

function lines(text: string): string[] {
  return text.split('\n').filter(Boolean);
}

function nameOf(ref: string): string {
  return (ref.split('@')[0] as string).replace(/:[\w.-]+$/, '');
}

function platforms(index: IndexJson): string[] {
  return index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`);
}

async function inspectIndex(ref: string): Promise<IndexJson> {
  return (await skopeoInspect(ref, { insecure: true, raw: true })) as IndexJson;
}

async function skopeoCopyAll(from: string, to: string, format?: 'v2s2'): Promise<void> {
  const dir = await makeTempDir('multi-policy');
  const policy = join(dir, 'policy.json');
  await writeFile(policy, '{"default":[{"type":"insecureAcceptAnything"}]}');
  await execa('skopeo', ['--policy', policy, 'copy', '--all', ...(format ? ['--format', format] : []), '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${from}`, `docker://${to}`], { timeout: 120_000 });
}

describe('multi-platform tsko build', () => {
  before(async () => {
    registry = await startDockerRegistry();
    cacheHome = await makeTempDir('multi-cache');
  });
  after(async () => {
    await registry?.stop();
  });

  let indexRef: string;

  it('builds two platforms into an OCI index skopeo reads, each child for its platform, children listed in --image-refs', async (t) => {
    const dir = await makeTempDir('multi-out', t);
    const refsFile = join(dir, 'refs.txt');
    const sbomDir = join(dir, 'sboms');
    const result = await build(['./examples/hello', '--platform', 'linux/amd64,linux/arm64', '--image-refs', refsFile, '--sbom-dir', sbomDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(lines(result.stdout).length, 1, 'one reference on stdout: the index');
    indexRef = lines(result.stdout)[0] as string;
    assert.match(indexRef, /^127\.0\.0\.1:\d+\/multi\/hello-[a-f0-9]{32}@sha256:[a-f0-9]{64}$/);

    const index = await inspectIndex(indexRef);
    assert.equal(index.mediaType, OCI_INDEX);
    assert.deepEqual(platforms(index), ['linux/amd64', 'linux/arm64']);
    assert.equal(index.annotations?.[BASE_NAME], 'builtin://static');
    assert.match(index.annotations?.[BASE_DIGEST] ?? '', /^sha256:[a-f0-9]{64}$/);

    // ko #555: the index, then each platform's image.
    const name = nameOf(indexRef);
    assert.deepEqual(lines(await readFile(refsFile, 'utf8')), [indexRef, ...index.manifests.map((m) => `${name}@${m.digest}`)]);

    const childBaseDigests: string[] = [];
    for (const child of index.manifests) {
      const childRef = `${name}@${child.digest}`;
      assert.equal(child.mediaType, OCI_MANIFEST);
      const config = (await skopeoInspect(childRef, { insecure: true, raw: true, config: true })) as { os: string; architecture: string };
      assert.equal(`${config.os}/${config.architecture}`, `${child.platform?.os}/${child.platform?.architecture}`, "the child's config says its platform");
      const manifest = (await skopeoInspect(childRef, { insecure: true, raw: true })) as ManifestJson;
      assert.equal(manifest.annotations?.[BASE_NAME], 'builtin://static');
      childBaseDigests.push(manifest.annotations?.[BASE_DIGEST] ?? '');

      const layout = join(dir, `layout-${child.platform?.architecture}`);
      await skopeoCopyToLayout(childRef, layout, 'child', { insecure: true });
      const bundle = join(dir, `bundle-${child.platform?.architecture}`);
      await umociUnpack(layout, 'child', bundle);
      assert.equal(await elfMachine(join(bundle, 'rootfs/ko-app/hello')), child.platform?.architecture === 'arm64' ? 'aarch64' : 'x86-64');

      // Each child has its own SBOM, pushed and written.
      const sbom = (await skopeoInspect(`${name}:${child.digest.replace(':', '-')}.sbom`, { insecure: true, raw: true })) as { subject: { digest: string } };
      assert.equal(sbom.subject.digest, child.digest);
      assert.ok((await stat(join(sbomDir, `hello-linux-${child.platform?.architecture}.spdx.json`))).size > 0);
    }
    assert.notEqual(childBaseDigests[0], childBaseDigests[1], "children carry their own platform's base digest");
    assert.ok(!childBaseDigests.includes(index.annotations?.[BASE_DIGEST] ?? ''), "the index carries the base index's digest");

    // The host's platform, picked from the index, runs and serves.
    await checkImage(indexRef, { insecure: true, expectBody: 'hello v1\n', t });
  });

  it('pushes nothing the second time: the index is already there', async () => {
    const again = await build(['./examples/hello', '--platform', 'linux/amd64,linux/arm64']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(lines(again.stdout)[0], indexRef, 'the same bytes, the same digest');
    assert.match(again.stderr, /existing manifest: .*:latest@/);
    assert.doesNotMatch(again.stderr, /pushed blob/);
  });

  it('--jobs 1 builds the platforms one after the other, still into one index', async () => {
    const result = await build(['./examples/hello', '--platform', 'linux/amd64,linux/arm64', '--jobs', '1', '--sbom=none']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(lines(result.stdout)[0], indexRef);
    const order = lines(result.stderr).filter((line) => /^(Building|Using base)/.test(line)).map((line) => line.split(' ')[0]);
    assert.deepEqual(order, ['Building', 'Using', 'Building', 'Using'], `one build slot: the second build starts after the first ends\n${result.stderr}`);
  });

  it('--platform all on builtin://static builds linux/amd64 and linux/arm64', async () => {
    const result = await build(['./examples/hello', '--platform', 'all', '--sbom=none']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(lines(result.stdout)[0], indexRef, 'the same two platforms as listing them');
  });

  it("--platform all follows a registry base's index, skipping unknown/unknown", async () => {
    // A base index like buildkit's: two platforms and an attestation entry for unknown/unknown.
    await skopeoCopyAll(`${nameOf(indexRef)}:latest`, `${registry.host}/bases/multi:latest`);
    const base = await inspectIndex(`${registry.host}/bases/multi:latest`);
    const amd64 = base.manifests[0] as Descriptor;
    const withAttestation = { ...base, manifests: [...base.manifests, { ...amd64, platform: { os: 'unknown', architecture: 'unknown' } }] };
    const bytes = Buffer.from(JSON.stringify(withAttestation));
    const put = await fetch(`${registry.url}/v2/bases/multi/manifests/attested`, { method: 'PUT', headers: { 'content-type': OCI_INDEX }, body: bytes });
    assert.equal(put.status, 201, await put.text());
    const baseDigest = put.headers.get('docker-content-digest');

    const result = await build(['./examples/with-kodata', '--platform', 'all', '--sbom=none'], { KO_DEFAULTBASEIMAGE: `${registry.host}/bases/multi:attested` });
    assert.equal(result.code, 0, result.stderr);
    const index = await inspectIndex(lines(result.stdout)[0] as string);
    assert.deepEqual(platforms(index), ['linux/amd64', 'linux/arm64']);
    assert.equal(index.annotations?.[BASE_NAME], `${registry.host}/bases/multi:attested`);
    assert.equal(index.annotations?.[BASE_DIGEST], baseDigest, "the index names the base's index");
    const child = (await skopeoInspect(`${nameOf(lines(result.stdout)[0] as string)}@${index.manifests[1]?.digest}`, { insecure: true, raw: true })) as ManifestJson;
    assert.equal(child.annotations?.[BASE_DIGEST], base.manifests[1]?.digest, "the arm64 child names the base's arm64 image");
  });

  it('follows a Docker-typed base: a Docker manifest list over Docker manifests', async () => {
    await skopeoCopyAll(`${nameOf(indexRef)}:latest`, `${registry.host}/bases/dockerlist:latest`, 'v2s2');
    const result = await build(['./examples/hello', '-B', '--platform', 'linux/arm64,linux/amd64', '--sbom=none'], { KO_DEFAULTBASEIMAGE: `${registry.host}/bases/dockerlist:latest` });
    assert.equal(result.code, 0, result.stderr);
    const list = await inspectIndex(lines(result.stdout)[0] as string);
    assert.equal(list.mediaType, DOCKER_LIST);
    assert.deepEqual(platforms(list), ['linux/arm64', 'linux/amd64'], 'in the order asked for');
    assert.equal(list.annotations, undefined, 'the Docker list schema has no annotations');
    for (const child of list.manifests) assert.equal(child.mediaType, DOCKER_MANIFEST);
  });

  it('writes a multi-platform OCI layout with --push=false', async (t) => {
    const dir = await makeTempDir('multi-layout', t);
    const layout = join(dir, 'layout');
    const result = await build(['./examples/hello', '--push=false', '--platform', 'linux/amd64,linux/arm64', '--oci-layout-path', layout], { KO_DOCKER_REPO: undefined });
    assert.equal(result.code, 0, result.stderr);
    const digest = (lines(result.stdout)[0] as string).split('@')[1];
    assert.equal(digest, indexRef.split('@')[1], 'the same index as pushed');
    const raw = await execa('skopeo', ['inspect', '--raw', `oci:${layout}:latest`], { timeout: 60_000 });
    assert.deepEqual(platforms(JSON.parse(raw.stdout) as IndexJson), ['linux/amd64', 'linux/arm64']);
  });

  describe('bad input', () => {
    it('--tarball with several platforms is an error, as in ko', async () => {
      const result = await build(['./examples/hello', '--platform', 'linux/amd64,linux/arm64', '--tarball', '/tmp/never.tar']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: --tarball can hold only one platform; pass a single --platform$/m);
    });

    it('--platform all cannot be combined with other platforms, nor with GOOS/GOARCH', async () => {
      const mixed = await build(['./examples/hello', '--platform', 'all,linux/amd64']);
      assert.equal(mixed.code, 1);
      assert.match(mixed.stderr, /^tsko: --platform all cannot be combined with other platforms/m);
      const env = await build(['./examples/hello', '--platform', 'all'], { GOOS: 'linux', GOARCH: 'arm64' });
      assert.equal(env.code, 1);
      assert.match(env.stderr, /^tsko: --platform all cannot be combined with GOOS\/GOARCH\/GOARM/m);
    });

    it('an unknown platform is refused, with the known ones as the hint', async () => {
      const result = await build(['./examples/hello', '--platform', 'linux/amd64,plan9/mips']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: unknown platform "plan9\/mips"$/m);
      assert.match(result.stderr, /^hint: known platforms: linux\/386, linux\/amd64/m);
      assert.doesNotMatch(result.stderr, /Building/);
    });
  });
});
