// Manifest operations (src/registry/manifests.ts) over a real transport against a scripted
// registry: what HEAD, GET and PUT send and make of each answer, digests checked against bytes,
// tag pages followed through Link, and the `GET /v2/` login check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST } from '../../src/image/media-types.js';
import { sha256 } from '../../src/registry/http.js';
import { checkAuth, getManifest, headManifest, listTags, putManifest } from '../../src/registry/manifests.js';
import type { Reference } from '../../src/registry/reference.js';
import { registryErrorBody } from '../support/scripted-server.js';
import { basic, rejection, retryEvents, serve, serveRegistry, transportFor } from '../support/transport-fixture.js';

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }));
const digest = sha256(manifest);
const other = sha256(Buffer.from('something else'));
const ref = (registry: string, extra: Partial<Reference> = { tag: 'v1' }): Reference => ({ registry, repository: 'team/app', ...extra });

describe('headManifest', () => {
  it('reads digest, media type (without parameters) and size from the headers, asking for every manifest type', async (t) => {
    const server = await serveRegistry(t, (_req, res) =>
      void res.writeHead(200, { 'docker-content-digest': digest, 'content-type': `${OCI_MANIFEST}; charset=utf-8`, 'content-length': String(manifest.length) }).end(),
    );
    const { transport } = transportFor(t);
    assert.deepEqual(await headManifest(transport, ref(server.host)), { digest, mediaType: OCI_MANIFEST, size: manifest.length });
    const head = server.requests.at(-1)!;
    assert.equal(`${head.method} ${head.url}`, 'HEAD /v2/team/app/manifests/v1');
    assert.equal(head.headers.accept, MANIFEST_ACCEPT.join(', '));
  });

  it('says there is none on 404, and on 403 as some registries answer for a missing manifest', async (t) => {
    for (const status of [404, 403]) {
      const server = await serveRegistry(t, (_req, res) => void res.writeHead(status).end());
      const { transport } = transportFor(t);
      assert.equal(await headManifest(transport, ref(server.host)), undefined, String(status));
    }
  });

  it('falls back to GET when the HEAD leaves out Docker-Content-Digest', async (t) => {
    const server = await serveRegistry(t, (req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(manifest.length) });
      res.end(req.method === 'GET' ? manifest : undefined);
    });
    const { transport } = transportFor(t);
    assert.deepEqual(await headManifest(transport, ref(server.host)), { digest, mediaType: OCI_MANIFEST, size: manifest.length });
    assert.deepEqual(server.requests.slice(1).map((r) => r.method), ['HEAD', 'GET']);
  });

  it('refuses an answer for another digest than the one asked for', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(200, { 'docker-content-digest': other, 'content-type': OCI_MANIFEST, 'content-length': '10' }).end());
    const { transport } = transportFor(t);
    const err = await rejection(headManifest(transport, ref(server.host, { digest })));
    assert.equal(err.code, 'REGISTRY_DIGEST');
    assert.equal(err.message, `${server.host} answered HEAD manifest ${server.host}/team/app@${digest} with digest ${other}`);
  });

  it('retries a 5xx', async (t) => {
    let n = 0;
    const server = await serveRegistry(t, (_req, res) =>
      void (n++ === 0 ? res.writeHead(503).end() : res.writeHead(200, { 'docker-content-digest': digest, 'content-type': OCI_MANIFEST, 'content-length': '5' }).end()),
    );
    const { transport, events } = transportFor(t);
    assert.equal((await headManifest(transport, ref(server.host)))?.digest, digest);
    assert.deepEqual(retryEvents(events).map((e) => [e.operation, e.cause]), [[`HEAD manifest ${server.host}/team/app:v1`, '503']]);
  });
});

describe('getManifest', () => {
  it('hashes the bytes and takes the media type from the manifest when the Content-Type is generic', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(manifest));
    const { transport } = transportFor(t);
    assert.deepEqual(await getManifest(transport, ref(server.host)), { digest, mediaType: OCI_MANIFEST, size: manifest.length, bytes: manifest });
  });

  it('keeps a specific Content-Type over the manifest\'s own field', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(200, { 'content-type': OCI_INDEX }).end(manifest));
    const { transport } = transportFor(t);
    assert.equal((await getManifest(transport, ref(server.host))).mediaType, OCI_INDEX);
  });

  it('refuses bytes that are not the digest asked for, or not the digest the registry claims', async (t) => {
    const server = await serveRegistry(t, (req, res) => {
      res.writeHead(200, req.url.endsWith(':v1') ? {} : { 'docker-content-digest': other }).end(manifest);
    });
    const { transport } = transportFor(t);
    const wrong = await rejection(getManifest(transport, ref(server.host, { digest: other })));
    assert.equal(wrong.message, `GET manifest ${server.host}/team/app@${other}: content has digest ${digest}, not the one asked for`);
    const forged = await rejection(getManifest(transport, ref(server.host, { tag: 'v2' })));
    assert.equal(forged.message, `GET manifest ${server.host}/team/app:v2: ${server.host} says ${other} but the content has digest ${digest}`);
  });

  it('names the registry\'s own error, and asks nothing for a reference without tag or digest', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(404).end(registryErrorBody('MANIFEST_UNKNOWN', 'manifest unknown')));
    const { transport } = transportFor(t);
    const err = await rejection(getManifest(transport, ref(server.host)));
    assert.equal(err.message, `GET manifest ${server.host}/team/app:v1 failed: ${server.host} answered 404 MANIFEST_UNKNOWN: manifest unknown`);
    const before = server.requests.length;
    assert.equal((await rejection(getManifest(transport, ref(server.host, {})))).code, 'REFERENCE');
    assert.equal(server.requests.length, before);
  });
});

describe('putManifest', () => {
  it('PUTs the bytes under the tag, or under the digest when there is no tag, and returns the digest', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(201, { 'docker-content-digest': digest }).end());
    const { transport } = transportFor(t);
    assert.equal(await putManifest(transport, ref(server.host), manifest, OCI_MANIFEST), digest);
    assert.equal(await putManifest(transport, ref(server.host, { digest }), manifest, OCI_MANIFEST), digest);
    const puts = server.requests.filter((r) => r.method === 'PUT');
    assert.deepEqual(puts.map((r) => r.url), ['/v2/team/app/manifests/v1', `/v2/team/app/manifests/${digest}`]);
    assert.equal(puts[0]!.headers['content-type'], OCI_MANIFEST);
    assert.deepEqual(puts[0]!.body, manifest);
  });

  it('refuses a registry that stored the manifest under another digest', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(201, { 'docker-content-digest': other }).end());
    const { transport } = transportFor(t);
    const err = await rejection(putManifest(transport, ref(server.host), manifest, OCI_MANIFEST));
    assert.equal(err.code, 'REGISTRY_DIGEST');
    assert.equal(err.message, `${server.host} stored manifest ${server.host}/team/app:v1 as ${other}, but its bytes have digest ${digest}`);
    assert.match(err.hint ?? '', /refusing to trust it/);
  });

  it('sends nothing when the bytes do not match the reference\'s digest', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(201).end());
    const { transport } = transportFor(t);
    assert.equal((await rejection(putManifest(transport, ref(server.host, { digest: other }), manifest, OCI_MANIFEST))).code, 'REGISTRY_DIGEST');
    assert.equal(server.requests.length, 0);
  });
});

describe('listTags', () => {
  it('follows the Link header through every page, keeping only string tags', async (t) => {
    const server = await serveRegistry(t, (req, res) => {
      if (req.url === '/v2/team/app/tags/list') {
        res.writeHead(200, { link: '</v2/team/app/tags/list?last=b&n=2>; rel="next"' }).end(JSON.stringify({ tags: ['a', 'b'] }));
      } else {
        res.writeHead(200).end(JSON.stringify({ tags: ['c', 7, null] }));
      }
    });
    const { transport } = transportFor(t);
    assert.deepEqual(await listTags(transport, ref(server.host)), ['a', 'b', 'c']);
    assert.deepEqual(server.requests.slice(1).map((r) => r.url), ['/v2/team/app/tags/list', '/v2/team/app/tags/list?last=b&n=2']);
  });

  it('lists nothing for a repository the registry does not know', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(404).end(registryErrorBody('NAME_UNKNOWN', 'repository name not known')));
    const { transport } = transportFor(t);
    assert.deepEqual(await listTags(transport, ref(server.host)), []);
  });
});

describe('checkAuth', () => {
  it('resolves when the registry takes the credentials, and says whose were refused otherwise', async (t) => {
    const server = await serve(t, (req, res) => {
      if (req.headers.authorization === basic('u', 'right')) return void res.writeHead(200).end('{}');
      res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const good = transportFor(t, { credentials: async () => ({ username: 'u', password: 'right' }) }).transport;
    await checkAuth(good, server.host);
    const bad = transportFor(t, { credentials: async () => ({ username: 'u', password: 'wrong' }) }).transport;
    const err = await rejection(checkAuth(bad, server.host));
    assert.equal(err.message, `authentication failed for ${server.host} as u`);
  });
});
