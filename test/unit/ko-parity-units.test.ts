// Unit tests of the pure pieces behind resolve, multi-platform builds and SBOMs: the index and
// artifact values, the build-slot limiter, label selectors, YAML documents kept as written,
// `go version -m` parsing, the SPDX document, and the --platform request rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { platformRequest } from '../../src/config/build-options.js';
import { parseBuildInfo } from '../../src/go/buildinfo.js';
import { attachmentTag, fileArtifact } from '../../src/image/artifact.js';
import { sha256 } from '../../src/image/digest.js';
import { buildIndex } from '../../src/image/index.js';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST } from '../../src/image/media-types.js';
import type { Image, Platform } from '../../src/image/types.js';
import { createLimiter } from '../../src/publish/limiter.js';
import { sbomFileName, spdxBytes, spdxDocument } from '../../src/publish/sbom.js';
import { parseDocuments, stringifyDocuments } from '../../src/resolve/documents.js';
import { findReferences, replaceReference } from '../../src/resolve/references.js';
import { matchesLabels, parseSelector, selectDocuments } from '../../src/resolve/selector.js';
import { isTskoError } from '../../src/errors.js';

function image(platform: Platform, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Image {
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, platform }));
  return {
    manifestMediaType: mediaType,
    manifestBytes,
    manifestDigest: sha256(manifestBytes),
    configBytes: Buffer.from('{}'),
    configDigest: sha256('{}'),
    config: { architecture: platform.architecture, os: platform.os, rootfs: { type: 'layers', diff_ids: [] } },
    layers: [],
    platform,
  };
}

const amd64: Platform = { os: 'linux', architecture: 'amd64' };
const arm64: Platform = { os: 'linux', architecture: 'arm64' };
const armv7: Platform = { os: 'linux', architecture: 'arm', variant: 'v7' };

describe('buildIndex', () => {
  it('lists the children in order with their platforms, and the base annotations', () => {
    const children = [image(amd64), image(armv7)];
    const index = buildIndex(children, { base: { name: 'b', digest: 'sha256:1' }, annotations: { note: 'x' } });
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(index.json.manifests.map((m) => [m.digest, m.size, m.platform]), [
      [children[0]?.manifestDigest, children[0]?.manifestBytes.length, { architecture: 'amd64', os: 'linux' }],
      [children[1]?.manifestDigest, children[1]?.manifestBytes.length, { architecture: 'arm', os: 'linux', variant: 'v7' }],
    ]);
    assert.deepEqual(index.json.annotations, { 'org.opencontainers.image.base.name': 'b', 'org.opencontainers.image.base.digest': 'sha256:1', note: 'x' });
    assert.equal(index.digest, sha256(index.bytes));
    assert.deepEqual(buildIndex(children, { base: { name: 'b', digest: 'sha256:1' }, annotations: { note: 'x' } }).bytes, index.bytes, 'pure');
  });

  it('is a Docker manifest list, without annotations, over Docker images', () => {
    const index = buildIndex([image(amd64, DOCKER_MANIFEST), image(arm64, DOCKER_MANIFEST)], { base: { name: 'b', digest: 'sha256:1' } });
    assert.equal(index.mediaType, DOCKER_MANIFEST_LIST);
    assert.equal(index.json.annotations, undefined);
  });

  it('refuses mixed families, two images of one platform, and no images', () => {
    assert.throws(() => buildIndex([image(amd64), image(arm64, DOCKER_MANIFEST)]), /cannot index/);
    assert.throws(() => buildIndex([image(amd64), image(amd64)]), /two images for platform linux\/amd64/);
    assert.throws(() => buildIndex([]), /at least one image/);
  });
});

describe('fileArtifact', () => {
  it('is an OCI 1.1 artifact: artifactType, the empty config, one layer, the subject', () => {
    const data = Buffer.from('{"spdxVersion":"SPDX-2.3"}');
    const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('image'), size: 5 };
    const artifact = fileArtifact({ mediaType: 'text/spdx+json', data, subject });
    assert.equal(artifact.json.artifactType, 'text/spdx+json');
    assert.deepEqual(artifact.json.config, { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 });
    assert.deepEqual(artifact.json.layers, [{ mediaType: 'text/spdx+json', digest: sha256(data), size: data.length }]);
    assert.deepEqual(artifact.json.subject, subject);
    assert.deepEqual(artifact.blobs.map((b) => b.digest), [artifact.json.config.digest, sha256(data)]);
    assert.equal(attachmentTag(subject.digest, 'sbom'), `sha256-${subject.digest.slice(7)}.sbom`);
  });
});

describe('createLimiter', () => {
  it('never runs more than the limit at once, and runs everything', async () => {
    const limiter = createLimiter(2);
    let active = 0;
    let peak = 0;
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        limiter.run(async () => {
          active += 1;
          peak = Math.max(peak, active);
          await new Promise((resolve) => setTimeout(resolve, 5));
          active -= 1;
          done.push(i);
        }),
      ),
    );
    assert.equal(peak, 2);
    assert.equal(done.length, 7);
  });

  it('frees the slot of a failed task, and drops a waiter whose signal aborts', async () => {
    const limiter = createLimiter(1);
    await assert.rejects(limiter.run(async () => Promise.reject(new Error('boom'))), /boom/);
    let release!: () => void;
    const holding = limiter.run(() => new Promise<void>((resolve) => (release = resolve)));
    const controller = new AbortController();
    let ran = false;
    const waiting = limiter.run(async () => {
      ran = true;
    }, controller.signal);
    controller.abort();
    await assert.rejects(waiting, (err: unknown) => isTskoError(err) && err.code === 'ABORTED');
    release();
    await holding;
    assert.equal(ran, false);
    assert.equal(await limiter.run(async () => 'next'), 'next', 'the slot is free again');
  });
});

describe('label selectors', () => {
  it('parses =, ==, !=, exists and !exists, and matches as kubectl does', () => {
    const selector = parseSelector('app=web, tier!=db,canary,!legacy,env==prod');
    assert.deepEqual(selector, [
      { key: 'app', op: '=', value: 'web' },
      { key: 'tier', op: '!=', value: 'db' },
      { key: 'canary', op: 'exists' },
      { key: 'legacy', op: '!exists' },
      { key: 'env', op: '=', value: 'prod' },
    ]);
    assert.equal(matchesLabels(selector, { app: 'web', canary: '', env: 'prod' }), true);
    assert.equal(matchesLabels(selector, { app: 'web', canary: '', env: 'prod', tier: 'db' }), false);
    assert.equal(matchesLabels(selector, { app: 'web', canary: '', env: 'prod', legacy: 'yes' }), false);
    assert.equal(matchesLabels(selector, { app: 'web', env: 'prod' }), false);
    assert.equal(matchesLabels(parseSelector('example.com/team=a'), { 'example.com/team': 'a' }), true);
  });

  it('refuses what it cannot match', () => {
    for (const bad of ['', 'a=b,', 'app in (a)', '!a=b', 'a=b c', '-bad=x']) {
      assert.throws(() => parseSelector(bad), (err: unknown) => isTskoError(err) && err.code === 'RESOLVE', bad);
    }
  });

  it('filters documents, and List items one by one', () => {
    const docs = parseDocuments({
      name: 'x.yaml',
      text: 'kind: List\nitems:\n- metadata: {name: a, labels: {app: a}}\n- metadata: {name: b, labels: {app: b}}\n---\nkind: Pod\nmetadata: {name: c, labels: {app: b}}\n',
    });
    const kept = selectDocuments(docs, parseSelector('app=b'));
    assert.equal(kept.length, 2);
    assert.equal(stringifyDocuments(kept), 'kind: List\nitems:\n  - metadata: { name: b, labels: { app: b } }\n---\nkind: Pod\nmetadata: {name: c, labels: {app: b}}\n');
  });
});

describe('resolve documents', () => {
  it('edits only the ko:// scalars and keeps the rest of the text as written', () => {
    const text = [
      '# header',
      '---',
      'a: ko://x/one   # c1',
      'b:',
      '- "ko://x/two"',
      "- {k: 'ko://x/one'}",
      'c: |',
      '  ko://x/three',
      'd: not ko://x',
      '...',
      '---',
      '---',
      '{"e": " ko://x/one "}',
      '',
    ].join('\n');
    const docs = parseDocuments({ name: 'in.yaml', text });
    assert.equal(docs.length, 2, 'empty documents dropped');
    const refs = findReferences(docs);
    assert.deepEqual(refs.map((r) => [r.spec, r.line]), [
      ['x/one', 3],
      ['x/two', 5],
      ['x/one', 6],
      ['x/three', 7],
      ['x/one', 13],
    ]);
    for (const ref of refs) replaceReference(ref, `r/${ref.spec.replace('x/', '')}@sha256:0`);
    assert.equal(
      stringifyDocuments(docs),
      ['# header', '---', 'a: r/one@sha256:0   # c1', 'b:', '- "r/two@sha256:0"', "- {k: 'r/one@sha256:0'}", 'c: r/three@sha256:0', 'd: not ko://x', '---', '{"e": "r/one@sha256:0"}', ''].join('\n'),
    );
  });

  it('names the file, line and column of malformed YAML', () => {
    assert.throws(
      () => parseDocuments({ name: 'bad.yaml', text: 'a: 1\nb: "unterminated\n' }),
      (err: unknown) => isTskoError(err) && err.code === 'RESOLVE' && /^bad\.yaml:2:\d+: invalid YAML: /.test(err.message),
    );
  });
});

describe('go version -m', () => {
  const output = [
    '/tmp/app: go1.26.8',
    '\tpath\texample.com/app/cmd/app',
    '\tmod\texample.com/app\t(devel)\t',
    '\tdep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=',
    '\tdep\tgolang.org/x/text\tv0.3.0\th1:aaaa',
    '\t=>\tgolang.org/x/text\tv0.14.0\th1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=',
    '\tdep\texample.com/local\tv0.0.0',
    '\t=>\t../local\t',
    '\tbuild\t-ldflags=-s -w',
    '\tbuild\tGOARCH=arm64',
    '',
  ].join('\n');

  it('parses the main module, dependencies, replacements and settings', () => {
    const info = parseBuildInfo(output);
    assert.equal(info.goVersion, 'go1.26.8');
    assert.equal(info.path, 'example.com/app/cmd/app');
    assert.deepEqual(info.main, { path: 'example.com/app', version: '(devel)' });
    assert.equal(info.deps.length, 3);
    assert.deepEqual(info.deps[1]?.replace, { path: 'golang.org/x/text', version: 'v0.14.0', sum: 'h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=' });
    assert.deepEqual(info.settings, [
      { key: '-ldflags', value: '-s -w' },
      { key: 'GOARCH', value: 'arm64' },
    ]);
    assert.throws(() => parseBuildInfo('/tmp/x: not a go binary\n'), /no Go build information/);
  });

  it('becomes an SPDX 2.3 document: replacements as built, h1 as hex SHA256, nothing from the clock', () => {
    const digest = sha256('image');
    const doc = spdxDocument(parseBuildInfo(output), { digest, platform: arm64, repository: 'r.example/team/app' }, { created: '1970-01-01T00:00:00Z', tool: 'tsko test' });
    assert.equal(doc.documentNamespace, `http://spdx.org/spdxdocs/tsko/sha256-${digest.slice(7)}`);
    const byName = new Map(doc.packages.map((p) => [p.name, p]));
    assert.equal(byName.get('golang.org/x/text')?.versionInfo, 'v0.14.0', 'the replacement is what was compiled in');
    assert.deepEqual(byName.get('github.com/google/uuid')?.checksums, [{ algorithm: 'SHA256', checksumValue: '348bda24330eb231c0f27d630212d2833ac0cf2d4782bfa136b6f9edefbde05d' }]);
    assert.equal(byName.get('example.com/local')?.checksums, undefined, 'a local replacement has no checksum');
    assert.match(byName.get(digest)?.externalRefs?.[0]?.referenceLocator ?? '', /^pkg:oci\/app@sha256%3A[a-f0-9]{64}\?arch=arm64&os=linux&repository_url=r.example%2Fteam%2Fapp$/);
    assert.deepEqual(spdxBytes(doc), spdxBytes(spdxDocument(parseBuildInfo(output), { digest, platform: arm64, repository: 'r.example/team/app' }, { created: '1970-01-01T00:00:00Z', tool: 'tsko test' })));
    assert.equal(sbomFileName('app', armv7), 'app-linux-arm-v7.spdx.json');
    assert.equal(sbomFileName('app', amd64), 'app-linux-amd64.spdx.json');
  });
});

describe('platformRequest', () => {
  const config = (env: Record<string, string> = {}, defaultPlatforms: string[] = []) => ({ env, defaultPlatforms });

  it('takes --platform, then defaultPlatforms, then GOOS/GOARCH, then linux/amd64', () => {
    assert.deepEqual(platformRequest(['linux/arm64', 'linux/arm/v7'], config()), [arm64, armv7]);
    assert.deepEqual(platformRequest([], config({}, ['linux/arm64'])), [arm64]);
    assert.deepEqual(platformRequest([], config({ GOOS: 'linux', GOARCH: 'arm', GOARM: '7' })), [armv7]);
    assert.deepEqual(platformRequest([], config()), [amd64]);
    assert.equal(platformRequest([], config({}, ['all'])), 'all');
  });

  it('keeps all alone, and away from GOOS/GOARCH/GOARM', () => {
    assert.throws(() => platformRequest(['all', 'linux/amd64'], config()), /cannot be combined with other platforms/);
    assert.throws(() => platformRequest(['all'], config({ GOARCH: 'arm64' })), /GOOS\/GOARCH\/GOARM/);
    assert.throws(() => platformRequest(['linux/sparc'], config()), /unknown platform "linux\/sparc"/);
  });
});
