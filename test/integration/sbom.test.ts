// SBOMs end to end: a temp module with one dependency from the Go module proxy, built by the real
// CLI and pushed to Debian's docker-registry (the sha256-<hex>.sbom tag) and to tsko's embedded
// registry (which also lists it through the OCI referrers API); the SPDX read back from the
// registry must name the modules go.sum names, with their checksums, and be byte-for-byte stable.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRegistryServer, type RunningRegistry } from '../../src/registry/server/index.js';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { skopeoInspect } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { runTsko, type TskoRunResult } from '../support/tsko-cli.js';

const UUID_SUM = 'h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=';
const SPDX = 'text/spdx+json';

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  checksums?: Array<{ algorithm: string; checksumValue: string }>;
  externalRefs?: Array<{ referenceType: string; referenceLocator: string }>;
  primaryPackagePurpose?: string;
}
interface SpdxDocument {
  spdxVersion: string;
  dataLicense: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  documentDescribes: string[];
  packages: SpdxPackage[];
  relationships: Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
}
interface ArtifactManifest {
  mediaType: string;
  artifactType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: Array<{ mediaType: string; digest: string; size: number }>;
  subject: { mediaType: string; digest: string; size: number };
}

let registry: DockerRegistry;
let cacheHome: string;
let app: string;

function build(args: string[], extra: Record<string, string | undefined> = {}): Promise<TskoRunResult> {
  return runTsko(['build', '.', '-B', ...args], {
    env: { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${registry.host}/sbom`, KO_DEFAULTBASEIMAGE: 'builtin://static', SOURCE_DATE_EPOCH: undefined, ...extra },
    cwd: app,
    timeoutMs: 300_000,
  });
}

function split(ref: string): { name: string; repository: string; digest: string; host: string } {
  const [name = '', digest = ''] = ref.split('@');
  const bare = name.replace(/:[\w.-]+$/, '');
  const slash = bare.indexOf('/');
  return { name: bare, host: bare.slice(0, slash), repository: bare.slice(slash + 1), digest };
}

async function fetchBlob(url: string, repository: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repository}/blobs/${digest}`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200, `GET blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

/** The SBOM manifest under ko's tag, and the SPDX bytes it points to, read from the registry. */
async function readSbom(url: string, ref: string): Promise<{ manifest: ArtifactManifest; bytes: Buffer; document: SpdxDocument }> {
  const { name, repository, digest } = split(ref);
  const manifest = (await skopeoInspect(`${name}:${digest.replace(':', '-')}.sbom`, { insecure: true, raw: true })) as ArtifactManifest;
  const layer = manifest.layers[0];
  assert.ok(layer, 'the SBOM manifest has one layer');
  const bytes = await fetchBlob(url, repository, layer.digest);
  return { manifest, bytes, document: JSON.parse(bytes.toString('utf8')) as SpdxDocument };
}

describe('SBOMs', () => {
  before(async () => {
    registry = await startDockerRegistry();
    cacheHome = await makeTempDir('sbom-cache');
    app = await makeTempDir('sbom-app');
    await writeFile(join(app, 'go.mod'), 'module example.com/sbomapp\n\ngo 1.22\n\nrequire github.com/google/uuid v1.6.0\n');
    await writeFile(
      join(app, 'go.sum'),
      `github.com/google/uuid v1.6.0 ${UUID_SUM}\ngithub.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=\n`,
    );
    await writeFile(join(app, 'main.go'), 'package main\n\nimport (\n\t"fmt"\n\n\t"github.com/google/uuid"\n)\n\nfunc main() { fmt.Println(uuid.NewSHA1(uuid.NameSpaceURL, []byte("tsko"))) }\n');
  });
  after(async () => {
    await registry?.stop();
  });

  let firstRef: string;
  let firstSbom: Buffer;

  it('pushes an SPDX 2.3 SBOM under sha256-<hex>.sbom that lists the main module and its dependency with checksums', async (t) => {
    const sbomDir = join(await makeTempDir('sbom-dir', t), 'out');
    const result = await build(['--sbom-dir', sbomDir]);
    assert.equal(result.code, 0, result.stderr);
    firstRef = result.stdout.trim();
    const { digest } = split(firstRef);
    assert.match(result.stderr, /^Published SBOM .*:sha256-[a-f0-9]{64}\.sbom@sha256:[a-f0-9]{64}$/m);

    const { manifest, bytes, document } = await readSbom(registry.url, firstRef);
    // OCI 1.1 artifact guidance: artifactType, the empty config, the image as subject.
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest.artifactType, SPDX);
    assert.deepEqual(manifest.config, { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 });
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0]?.mediaType, SPDX);
    assert.equal(manifest.subject.digest, digest);
    firstSbom = bytes;

    assert.equal(document.spdxVersion, 'SPDX-2.3');
    assert.equal(document.dataLicense, 'CC0-1.0');
    assert.equal(document.creationInfo.created, '1970-01-01T00:00:00Z', 'no wall-clock time without SOURCE_DATE_EPOCH');
    assert.ok(document.documentNamespace.endsWith(digest.replace(':', '-')), 'the namespace comes from the image digest');
    const image = document.packages.find((p) => p.primaryPackagePurpose === 'CONTAINER');
    assert.equal(image?.name, digest);
    assert.deepEqual(document.documentDescribes, [image?.SPDXID]);

    const main = document.packages.find((p) => p.name === 'example.com/sbomapp');
    assert.ok(main, `main module listed: ${document.packages.map((p) => p.name).join(', ')}`);
    assert.equal(main.versionInfo, '(devel)');
    const uuid = document.packages.find((p) => p.name === 'github.com/google/uuid');
    assert.ok(uuid, 'the dependency is listed');
    assert.equal(uuid.versionInfo, 'v1.6.0');
    assert.deepEqual(uuid.checksums, [{ algorithm: 'SHA256', checksumValue: Buffer.from(UUID_SUM.slice(3), 'base64').toString('hex') }], "go.sum's h1: hash, in hex");
    assert.equal(uuid.externalRefs?.[0]?.referenceLocator, 'pkg:golang/github.com/google/uuid@v1.6.0');
    assert.ok(document.relationships.some((r) => r.spdxElementId === main.SPDXID && r.relationshipType === 'DEPENDS_ON' && r.relatedSpdxElement === uuid.SPDXID));
    assert.ok(document.relationships.some((r) => r.spdxElementId === image?.SPDXID && r.relationshipType === 'CONTAINS' && r.relatedSpdxElement === main.SPDXID));

    assert.deepEqual(await readFile(join(sbomDir, 'sbomapp-linux-amd64.spdx.json')), bytes, '--sbom-dir writes the same bytes');
  });

  it('is deterministic: a cold rebuild gives the same SBOM bytes; SOURCE_DATE_EPOCH sets its time', async () => {
    const cold = await build([], { XDG_CACHE_HOME: await makeTempDir('sbom-cache-2') });
    assert.equal(cold.code, 0, cold.stderr);
    assert.equal(cold.stdout.trim(), firstRef);
    assert.match(cold.stderr, /existing manifest: .*\.sbom@/, 'the SBOM push is skipped: the registry has these bytes');
    assert.deepEqual((await readSbom(registry.url, firstRef)).bytes, firstSbom);

    const dated = await build([], { SOURCE_DATE_EPOCH: '1700000000' });
    assert.equal(dated.code, 0, dated.stderr);
    const { document } = await readSbom(registry.url, dated.stdout.trim());
    assert.equal(document.creationInfo.created, '2023-11-14T22:13:20Z');
  });

  it('--sbom=none pushes no SBOM', async () => {
    const result = await build(['--sbom=none', '--image-label', 'sbom=none']);
    assert.equal(result.code, 0, result.stderr);
    const { repository, digest } = split(result.stdout.trim());
    assert.doesNotMatch(result.stderr, /SBOM/);
    const tags = (await (await fetch(`${registry.url}/v2/${repository}/tags/list`)).json()) as { tags: string[] };
    assert.ok(!tags.tags.includes(`${digest.replace(':', '-')}.sbom`), tags.tags.join(', '));
    assert.ok(tags.tags.some((tag) => tag.endsWith('.sbom')), 'the earlier builds did push theirs');
  });

  describe('on the embedded registry', () => {
    let embedded: RunningRegistry;
    before(async () => {
      const root = await makeTempDir('sbom-embedded');
      await mkdir(root, { recursive: true });
      embedded = await startRegistryServer({ addr: '127.0.0.1:0', root });
    });
    after(async () => {
      await embedded?.close();
    });

    it('lists the SBOM as a referrer of the image (the OCI referrers API)', async () => {
      const result = await build([], { KO_DOCKER_REPO: `${embedded.address}/emb` });
      assert.equal(result.code, 0, result.stderr);
      const { repository, digest } = split(result.stdout.trim());
      const res = await fetch(`${embedded.url}/v2/${repository}/referrers/${digest}`, { signal: AbortSignal.timeout(30_000) });
      assert.equal(res.status, 200);
      const referrers = (await res.json()) as { manifests: Array<{ digest: string; artifactType?: string }> };
      assert.equal(referrers.manifests.length, 1, JSON.stringify(referrers));
      assert.equal(referrers.manifests[0]?.artifactType, SPDX);
      const filtered = (await (await fetch(`${embedded.url}/v2/${repository}/referrers/${digest}?artifactType=${encodeURIComponent(SPDX)}`)).json()) as { manifests: unknown[] };
      assert.equal(filtered.manifests.length, 1);

      // The referrer is the SBOM under the tag too, with the same bytes.
      const manifest = await fetch(`${embedded.url}/v2/${repository}/manifests/${digest.replace(':', '-')}.sbom`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(manifest.headers.get('docker-content-digest'), referrers.manifests[0]?.digest);
      const layer = ((await manifest.json()) as ArtifactManifest).layers[0];
      const document = JSON.parse((await fetchBlob(embedded.url, repository, layer?.digest ?? '')).toString('utf8')) as SpdxDocument;
      assert.ok(document.packages.some((p) => p.name === 'github.com/google/uuid'));
    });
  });
});
