// `tsko build` end to end: the real CLI, the real Go toolchain, Debian's docker-registry, and
// skopeo + umoci + the image's own entrypoint to check what was pushed.
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage, skopeoInspect, umociUnpack } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko, type TskoRunResult } from '../support/tsko-cli.js';

const REF_LINE = /^127\.0\.0\.1:\d+\/[a-z0-9/._-]+(:[\w.-]+)?@sha256:[a-f0-9]{64}$/;

let registry: DockerRegistry;
let cacheHome: string;

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${registry.host}/test`, SOURCE_DATE_EPOCH: undefined, ...extra };
}

function build(args: string[], extra: Record<string, string | undefined> = {}, cwd = repoRoot): Promise<TskoRunResult> {
  return runTsko(['build', ...args], { env: env(extra), cwd });
}

function stdoutLines(result: TskoRunResult): string[] {
  return result.stdout.split('\n').filter(Boolean);
}

/** skopeo refuses name:tag@digest (ko's format when the only tag is not latest): keep the digest. */
function byDigest(ref: string): string {
  return ref.replace(/:[\w.-]+@/, '@');
}

describe('tsko build against docker-registry', () => {
  before(async () => {
    registry = await startDockerRegistry();
    cacheHome = await makeTempDir('build-cache');
  });
  after(async () => {
    await registry?.stop();
  });

  it('pushes examples/hello as an image skopeo and umoci accept and whose entrypoint serves HTTP', async (t) => {
    const result = await build(['./examples/hello']);
    assert.equal(result.code, 0, result.stderr);
    const lines = stdoutLines(result);
    assert.equal(lines.length, 1, `one reference on stdout, got: ${result.stdout}`);
    const ref = lines[0] as string;
    assert.match(ref, REF_LINE);
    assert.match(ref, /\/test\/hello-[a-f0-9]{32}@/, 'named <repo>/<base>-<md5(importpath)> as ko does');

    const checked = await checkImage(ref, { insecure: true, expectBody: 'hello v1\n', t });
    const config = checked.config as { config: { Entrypoint: string[]; Env: string[]; Cmd?: unknown }; created: string; rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.config.Entrypoint, ['/ko-app/hello']);
    assert.equal(config.config.Cmd, undefined);
    assert.ok(config.config.Env.some((e) => /^PATH=.*:\/ko-app$/.test(e)), 'ko-app appended to PATH');
    assert.ok(config.config.Env.includes('KO_DATA_PATH=/var/run/ko'));
    assert.equal(config.created, '1970-01-01T00:00:00Z');
    const binary = await stat(join(checked.rootfs, 'ko-app/hello'));
    assert.equal(binary.mode & 0o777, 0o555);
    assert.equal(binary.mtimeMs, 0);
    const manifest = checked.manifest as { mediaType: string; annotations: Record<string, string> };
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest.annotations['org.opencontainers.image.base.name'], 'builtin://static');
  });

  it('gives the same digest for unchanged source, and the second build uploads zero blobs', async () => {
    const first = await build(['./examples/hello']);
    const second = await build(['./examples/hello']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
    assert.match(second.stderr, /uploaded 0 blobs/);
    assert.doesNotMatch(second.stderr, /pushed blob/);

    // A different tsko cache (no Go output to reuse) still gives the same bytes.
    const otherCache = await makeTempDir('build-cache-2');
    const third = await build(['./examples/hello'], { XDG_CACHE_HOME: otherCache });
    assert.equal(third.code, 0, third.stderr);
    assert.equal(third.stdout, first.stdout);
  });

  it('packs kodata under /var/run/ko and serves it', async (t) => {
    const result = await build(['./examples/with-kodata']);
    assert.equal(result.code, 0, result.stderr);
    const ref = stdoutLines(result)[0] as string;
    const checked = await checkImage(ref, { insecure: true, expectBody: /served from KO_DATA_PATH/, t });
    const css = await stat(join(checked.rootfs, 'var/run/ko/assets/style.css'));
    assert.equal(css.mode & 0o777, 0o555);
  });

  it('prints one reference per argument, in argument order, and writes --image-refs', async () => {
    const refsFile = join(await makeTempDir('refs'), 'refs.txt');
    const result = await build(['./examples/with-kodata', './examples/hello', '--image-refs', refsFile]);
    assert.equal(result.code, 0, result.stderr);
    const lines = stdoutLines(result);
    assert.equal(lines.length, 2);
    assert.match(lines[0] as string, /\/with-kodata-/);
    assert.match(lines[1] as string, /\/hello-/);
    assert.equal(await readFile(refsFile, 'utf8'), result.stdout);
  });

  it('names images with -B, -P and --bare, and tags with --tags', async () => {
    const base = await build(['./examples/hello', '-B']);
    assert.match(stdoutLines(base)[0] as string, new RegExp(`^${registry.host}/test/hello@sha256:`));
    const preserve = await build(['./examples/hello', '-P']);
    assert.match(stdoutLines(preserve)[0] as string, new RegExp(`^${registry.host}/test/example.com/hello@sha256:`));
    const bare = await build(['./examples/hello', '--bare', '--tags', 'v1']);
    assert.match(stdoutLines(bare)[0] as string, new RegExp(`^${registry.host}/test:v1@sha256:`));
    const tags = (await skopeoInspect(`${registry.host}/test:v1`, { insecure: true })) as { RepoTags: string[] };
    assert.ok(tags.RepoTags.includes('v1'));
  });

  it('applies --image-label, --image-annotation and --image-user', async () => {
    const result = await build(['./examples/hello', '-B', '--tags', 'labelled', '--image-label', 'team=dev', '--image-annotation', 'note=hi', '--image-user', '1234']);
    assert.equal(result.code, 0, result.stderr);
    const ref = stdoutLines(result)[0] as string;
    const config = (await skopeoInspect(byDigest(ref), { insecure: true, raw: true, config: true })) as { config: { Labels: Record<string, string>; User: string } };
    assert.equal(config.config.Labels.team, 'dev');
    assert.equal(config.config.User, '1234');
    const manifest = (await skopeoInspect(byDigest(ref), { insecure: true, raw: true })) as { annotations: Record<string, string> };
    assert.equal(manifest.annotations.note, 'hi');
  });

  it('takes created from SOURCE_DATE_EPOCH', async () => {
    const result = await build(['./examples/hello', '-B', '--tags', 'dated'], { SOURCE_DATE_EPOCH: '1700000000' });
    assert.equal(result.code, 0, result.stderr);
    const config = (await skopeoInspect(byDigest(stdoutLines(result)[0] as string), { insecure: true, raw: true, config: true })) as { created: string };
    assert.equal(config.created, '2023-11-14T22:13:20Z');
  });

  it('writes an OCI layout umoci unpacks, and a docker tarball, with --push=false', async () => {
    const dir = await makeTempDir('layout');
    const layout = join(dir, 'layout');
    const tarball = join(dir, 'image.tar');
    const result = await build(['./examples/hello', '--push=false', '--oci-layout-path', layout, '--tarball', tarball], { KO_DOCKER_REPO: undefined });
    assert.equal(result.code, 0, result.stderr);
    assert.match(stdoutLines(result)[0] as string, /:latest@sha256:[a-f0-9]{64}$/);
    await umociUnpack(layout, 'latest', join(dir, 'bundle'));
    assert.ok((await stat(join(dir, 'bundle/rootfs/ko-app/hello'))).isFile());
    assert.ok((await stat(tarball)).size > 1_000_000);
    assert.deepEqual((await readdir(join(layout, 'blobs/sha256'))).length, 5, 'base layer, kodata, binary, config, manifest');
  });

  it('follows a Docker-media-type base: Docker layers, and base layers mounted rather than re-uploaded', async () => {
    // Make a Docker schema2 base in the registry from an image tsko built.
    const seed = await build(['./examples/hello', '-B', '--tags', 'seed']);
    assert.equal(seed.code, 0, seed.stderr);
    const { execa } = await import('execa');
    const policy = join(await makeTempDir('policy'), 'policy.json');
    await import('node:fs/promises').then((fs) => fs.writeFile(policy, '{"default":[{"type":"insecureAcceptAnything"}]}'));
    await execa('skopeo', ['--policy', policy, 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--format', 'v2s2', `docker://${registry.host}/test/hello:seed`, `docker://${registry.host}/bases/docker:latest`]);

    const result = await build(['./examples/with-kodata', '-B', '--tags', 'on-docker-base'], { KO_DEFAULTBASEIMAGE: `${registry.host}/bases/docker:latest` });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /mounted blob/);
    const ref = stdoutLines(result)[0] as string;
    const manifest = (await skopeoInspect(byDigest(ref), { insecure: true, raw: true })) as { mediaType: string; layers: Array<{ mediaType: string }> };
    assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    for (const layer of manifest.layers) assert.equal(layer.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  });

  it('copies base layers from another registry once', async () => {
    const other = await startDockerRegistry();
    try {
      const result = await build(['./examples/hello', '-B', '--tags', 'copied'], { KO_DOCKER_REPO: `${other.host}/copy`, KO_DEFAULTBASEIMAGE: `${registry.host}/bases/docker:latest` });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /copied blob/);
      const again = await build(['./examples/with-kodata', '-B', '--tags', 'copied'], { KO_DOCKER_REPO: `${other.host}/copy`, KO_DEFAULTBASEIMAGE: `${registry.host}/bases/docker:latest` });
      assert.equal(again.code, 0, again.stderr);
      assert.doesNotMatch(again.stderr, /copied blob/);
      assert.match(again.stderr, /mounted blob/, 'a layer copied into one repository is mounted into the next');
    } finally {
      await other.stop();
    }
  });
});
