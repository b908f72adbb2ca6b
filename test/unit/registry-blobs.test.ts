// Blob operations (src/registry/blobs.ts) over a real transport against scripted servers: HEAD
// answers, GETs redirected to storage on another origin (which never sees Authorization), digests
// checked on buffers and at the end of streams, and cross-repository mounts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { TskoError } from '../../src/errors.js';
import { getBlob, headBlob, mountBlob, openBlobStream } from '../../src/registry/blobs.js';
import { sha256 } from '../../src/registry/http.js';
import type { Repository } from '../../src/registry/reference.js';
import { basic, rejection, retryEvents, seen, serve, serveRegistry, transportFor } from '../support/transport-fixture.js';

const blob = randomBytes(3000);
const digest = sha256(blob);
const other = sha256(Buffer.from('other'));
const repo = (registry: string, repository = 'team/app'): Repository => ({ registry, repository });

describe('headBlob', () => {
  it('says present on 200 or a redirect to storage, absent on 404', async (t) => {
    const answers = new Map([['a', 200], ['b', 307], ['c', 404]].map(([k, v]) => [sha256(Buffer.from(String(k))), Number(v)]));
    const server = await serveRegistry(t, (req, res) => {
      const d = req.url.split('/').at(-1)!;
      res.writeHead(answers.get(d)!, answers.get(d) === 307 ? { location: 'http://127.0.0.1:1/storage' } : {}).end();
    });
    const { transport } = transportFor(t);
    const results = [];
    for (const d of answers.keys()) results.push(await headBlob(transport, repo(server.host), d));
    assert.deepEqual(results, [true, true, false]);
    assert.equal(server.requests.at(-1)!.method, 'HEAD');
  });

  it('refuses a registry that answers for another blob, and retries a 5xx', async (t) => {
    let n = 0;
    const server = await serveRegistry(t, (_req, res) => void (n++ === 0 ? res.writeHead(502).end() : res.writeHead(200, { 'docker-content-digest': other }).end()));
    const { transport, events } = transportFor(t);
    const err = await rejection(headBlob(transport, repo(server.host), digest));
    assert.equal(err.message, `${server.host} answered HEAD blob ${server.host}/team/app@${digest} with digest ${other}`);
    assert.deepEqual(retryEvents(events).map((e) => e.cause), ['502']);
  });
});

describe('getBlob', () => {
  it('follows a redirect to storage on another origin, which gets no Authorization', async (t) => {
    const storage = await serve(t, (_req, res) => void res.writeHead(200).end(blob));
    const registry = await serve(t, (req, res) => {
      if (req.headers.authorization !== basic('u', 'pw')) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      if (req.url === '/v2/') return void res.writeHead(200).end();
      // A same-origin hop first: it keeps Authorization.
      if (req.url.includes('/blobs/')) return void res.writeHead(307, { location: '/relocated' }).end();
      res.writeHead(302, { location: `${storage.origin}/bucket/blob?sig=abc` }).end();
    });
    const { transport } = transportFor(t, { credentials: async () => ({ username: 'u', password: 'pw' }) });
    assert.deepEqual(await getBlob(transport, repo(registry.host), digest), blob);
    assert.deepEqual(seen(registry).filter((l) => !l.includes('/v2/ ')), [`GET /v2/team/app/blobs/${digest} ${basic('u', 'pw')}`, `GET /relocated ${basic('u', 'pw')}`]);
    assert.deepEqual(seen(storage), ['GET /bucket/blob?sig=abc -']);
  });

  it('refuses bytes with another digest, once', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(200).end(Buffer.from('tampered')));
    const { transport } = transportFor(t);
    const err = await rejection(getBlob(transport, repo(server.host), digest));
    assert.equal(err.code, 'REGISTRY_DIGEST');
    assert.equal(err.message, `GET blob ${server.host}/team/app@${digest}: content has digest ${sha256(Buffer.from('tampered'))}`);
    assert.equal(server.requests.length, 2);
  });

  it('gives up on a redirect loop', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(307, { location: '/again' }).end());
    const { transport } = transportFor(t);
    const err = await rejection(getBlob(transport, repo(server.host), digest));
    assert.equal(err.message, `GET blob ${server.host}/team/app@${digest}: too many redirects`);
    assert.equal(server.requests.length, 1 + 6);
  });
});

describe('openBlobStream', () => {
  it('streams the blob with its size', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(200, { 'content-length': String(blob.length) }).end(blob));
    const { transport } = transportFor(t);
    const { size, stream } = await openBlobStream(transport, repo(server.host), digest);
    assert.equal(size, blob.length);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), blob);
  });

  it('fails at the end of the stream when the bytes have another digest', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(200).end('tampered'));
    const { transport } = transportFor(t);
    const { stream } = await openBlobStream(transport, repo(server.host), digest);
    await assert.rejects(text(stream), (err: unknown) => err instanceof TskoError && err.code === 'REGISTRY_DIGEST');
  });
});

describe('mountBlob', () => {
  it('mounts from another repository of the same registry', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(201).end());
    const { transport } = transportFor(t);
    assert.equal(await mountBlob(transport, repo(server.host), digest, repo(server.host, 'team/base')), true);
    assert.equal(server.requests.at(-1)!.url, `/v2/team/app/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=team%2Fbase`);
    assert.equal(server.requests.at(-1)!.method, 'POST');
  });

  it('cancels the upload session a registry opens instead of mounting, and says to upload', async (t) => {
    const server = await serveRegistry(t, (req, res, raw) => {
      if (req.method === 'POST') return void res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u1?_state=s' }).end();
      // A failed cancel costs nothing: the session is left to the registry's garbage collection.
      raw.socket.destroy();
    });
    const { transport } = transportFor(t);
    assert.equal(await mountBlob(transport, repo(server.host), digest, repo(server.host, 'team/base')), false);
    assert.deepEqual(server.requests.slice(1).map((r) => `${r.method} ${r.url}`), [`POST /v2/team/app/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=team%2Fbase`, 'DELETE /v2/team/app/blobs/uploads/u1?_state=s']);
  });

  it('says to upload when the registry cannot mount, or the source is on another registry', async (t) => {
    for (const status of [400, 404, 405]) {
      const server = await serveRegistry(t, (_req, res) => void res.writeHead(status).end());
      const { transport } = transportFor(t);
      assert.equal(await mountBlob(transport, repo(server.host), digest, repo(server.host, 'team/base')), false, String(status));
    }
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(201).end());
    const { transport } = transportFor(t);
    assert.equal(await mountBlob(transport, repo(server.host), digest, repo('elsewhere.example', 'team/base')), false);
    assert.equal(server.requests.length, 0);
  });

  it('fails on any other answer', async (t) => {
    const server = await serveRegistry(t, (_req, res) => void res.writeHead(409).end());
    const { transport } = transportFor(t);
    const err = await rejection(mountBlob(transport, repo(server.host), digest, repo(server.host, 'team/base')));
    assert.equal(err.message, `mount blob ${digest} from team/base into ${server.host}/team/app failed: ${server.host} answered 409`);
  });
});
