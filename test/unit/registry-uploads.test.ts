// Blob uploads (src/registry/uploads.ts, and RegistryClient.uploadBlob's async body factory)
// against scripted registries: the POST/PUT and POST/PATCH…/PUT sequences, a Location's own
// query kept byte for byte, whole-upload retries that reopen the body, a session's own retries,
// Authorization withheld from a Location on another origin, and the refusals.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { RegistryClient } from '../../src/registry/client.js';
import { sha256 } from '../../src/registry/http.js';
import type { Repository } from '../../src/registry/reference.js';
import { uploadBlob, uploadBlobChunked } from '../../src/registry/uploads.js';
import type { ScriptedHandler } from '../support/scripted-server.js';
import { type TestContext, basic, rejection, retryEvents, seen, serve, serveRegistry, transportFor } from '../support/transport-fixture.js';

const blob = randomBytes(5000);
const digest = sha256(blob);
const encoded = encodeURIComponent(digest);
const repo = (registry: string): Repository => ({ registry, repository: 'team/app' });

/** POST opens session s<n> (Location with its own `_state`), PUT stores what it got, as the registry says. */
function uploadRegistry(overrides: { put?: ScriptedHandler; post?: ScriptedHandler } = {}): ScriptedHandler {
  let sessions = 0;
  return (req, res, raw) => {
    if (req.method === 'POST') {
      if (overrides.post) return overrides.post(req, res, raw);
      return void res.writeHead(202, { location: `/v2/team/app/blobs/uploads/s${++sessions}?_state=a%2Bb` }).end();
    }
    if (overrides.put) return overrides.put(req, res, raw);
    res.writeHead(201, { 'docker-content-digest': sha256(req.body) }).end();
  };
}

function clientFor(t: TestContext): RegistryClient {
  const client = new RegistryClient({ retry: { baseDelayMs: 1 } });
  t.after(() => client.close());
  return client;
}

describe('uploadBlob', () => {
  it('opens a session and PUTs the body to its Location with ?digest= appended', async (t) => {
    const server = await serveRegistry(t, uploadRegistry());
    const { transport } = transportFor(t);
    await uploadBlob(transport, repo(server.host), digest, blob.length, () => blob);
    const [post, put] = server.requests.slice(1);
    assert.equal(`${post!.method} ${post!.url}`, 'POST /v2/team/app/blobs/uploads/');
    assert.equal(`${put!.method} ${put!.url}`, `PUT /v2/team/app/blobs/uploads/s1?_state=a%2Bb&digest=${encoded}`);
    assert.equal(put!.headers['content-type'], 'application/octet-stream');
    assert.equal(put!.headers['content-length'], String(blob.length));
    assert.deepEqual(put!.body, blob);
  });

  it('retries the whole upload from a new session, opening the body again through an async factory', async (t) => {
    let puts = 0;
    const server = await serveRegistry(t, uploadRegistry({
      put: (req, res, raw) => {
        if (++puts === 1) return void raw.socket.destroy();
        res.writeHead(201, { 'docker-content-digest': sha256(req.body) }).end();
      },
    }));
    const client = clientFor(t);
    let opened = 0;
    await client.uploadBlob(repo(server.host), digest, blob.length, async () => {
      opened++;
      await new Promise((resolve) => setImmediate(resolve));
      return Readable.from([blob.subarray(0, 1000), blob.subarray(1000)]);
    });
    assert.equal(opened, 2);
    assert.deepEqual(server.requests.slice(1).map((r) => `${r.method} ${r.url.split('?')[0]}`), [
      'POST /v2/team/app/blobs/uploads/',
      'PUT /v2/team/app/blobs/uploads/s1',
      'POST /v2/team/app/blobs/uploads/',
      'PUT /v2/team/app/blobs/uploads/s2',
    ]);
    assert.deepEqual(server.requests.at(-1)!.body, blob);
  });

  it('retries a failed session POST on its own, so it costs none of the whole upload\'s tries', async (t) => {
    let posts = 0;
    let puts = 0;
    const server = await serveRegistry(t, uploadRegistry({
      post: (_req, res) => void (++posts === 1 ? res.writeHead(503).end() : res.writeHead(202, { location: `/v2/team/app/blobs/uploads/s${posts}` }).end()),
      put: (req, res, raw) => void (++puts === 1 ? raw.socket.destroy() : res.writeHead(201, { 'docker-content-digest': sha256(req.body) }).end()),
    }));
    // Two tries in all: the dropped PUT takes the second, so the failed POST must not have taken one.
    const { transport, events } = transportFor(t, { retry: { tries: 2, baseDelayMs: 1 } });
    let opened = 0;
    await uploadBlob(transport, repo(server.host), digest, blob.length, () => (opened++, blob));
    assert.equal(opened, 2);
    assert.deepEqual(server.requests.slice(1).map((r) => `${r.method} ${r.url}`.split('?')[0]), [
      'POST /v2/team/app/blobs/uploads/',
      'POST /v2/team/app/blobs/uploads/',
      'PUT /v2/team/app/blobs/uploads/s2',
      'POST /v2/team/app/blobs/uploads/',
      'PUT /v2/team/app/blobs/uploads/s3',
    ]);
    assert.deepEqual(retryEvents(events).map((e) => e.cause).slice(0, 1), ['503']);
  });

  it('sends no Authorization to a Location on another origin', async (t) => {
    const storage = await serve(t, (req, res) => void res.writeHead(201, { 'docker-content-digest': sha256(req.body) }).end());
    const registry = await serve(t, (req, res) => {
      if (req.headers.authorization !== basic('u', 'pw')) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      if (req.method === 'POST') return void res.writeHead(202, { location: `${storage.origin}/upload/1?sig=x` }).end();
      res.writeHead(200).end();
    });
    const { transport } = transportFor(t, { credentials: async () => ({ username: 'u', password: 'pw' }) });
    await uploadBlob(transport, repo(registry.host), digest, blob.length, () => blob);
    assert.deepEqual(seen(storage), [`PUT /upload/1?sig=x&digest=${encoded} -`]);
    assert.ok(seen(registry).includes(`POST /v2/team/app/blobs/uploads/ ${basic('u', 'pw')}`));
  });

  it('refuses a session without a Location, and a blob stored under another digest', async (t) => {
    const noLocation = await serveRegistry(t, uploadRegistry({ post: (_req, res) => void res.writeHead(202).end() }));
    const { transport } = transportFor(t);
    const err = await rejection(uploadBlob(transport, repo(noLocation.host), digest, blob.length, () => blob));
    assert.equal(err.message, `upload blob ${noLocation.host}/team/app@${digest}: registry answered 202 without a Location header`);

    const other = sha256(Buffer.from('other'));
    const forging = await serveRegistry(t, uploadRegistry({ put: (_req, res) => void res.writeHead(201, { 'docker-content-digest': other }).end() }));
    const forged = await rejection(uploadBlob(transport, repo(forging.host), digest, blob.length, () => blob));
    assert.equal(forged.code, 'REGISTRY_DIGEST');
    assert.equal(forged.message, `${forging.host} stored the blob as ${other}, expected ${digest}`);
  });
});

describe('uploadBlobChunked', () => {
  it('PATCHes each chunk with its range to the latest Location, then closes with ?digest=', async (t) => {
    const data = Buffer.from('0123456789');
    let patches = 0;
    const server = await serveRegistry(t, (req, res) => {
      if (req.method === 'POST') return void res.writeHead(202, { location: '/v2/team/app/blobs/uploads/c?_state=0' }).end();
      if (req.method === 'PATCH') return void res.writeHead(202, { location: `/v2/team/app/blobs/uploads/c?_state=${++patches}` }).end();
      res.writeHead(201).end();
    });
    const { transport } = transportFor(t);
    await uploadBlobChunked(transport, repo(server.host), sha256(data), data, 4);
    const sent = server.requests.slice(2).map((r) => `${r.method} ${r.url} ${r.headers['content-range'] ?? '-'} ${r.body.toString()}`);
    assert.deepEqual(sent, [
      'PATCH /v2/team/app/blobs/uploads/c?_state=0 0-3 0123',
      'PATCH /v2/team/app/blobs/uploads/c?_state=1 4-7 4567',
      'PATCH /v2/team/app/blobs/uploads/c?_state=2 8-9 89',
      `PUT /v2/team/app/blobs/uploads/c?_state=3&digest=${encodeURIComponent(sha256(data))} - `,
    ]);
    assert.equal(server.requests.at(-1)!.headers['content-length'], '0');
  });

  it('refuses a chunk size that is not positive, before asking anything', async (t) => {
    const server = await serveRegistry(t, uploadRegistry());
    const { transport } = transportFor(t);
    const err = await rejection(uploadBlobChunked(transport, repo(server.host), digest, blob, 0));
    assert.equal(err.code, 'INTERNAL');
    assert.equal(server.requests.length, 0);
  });
});
