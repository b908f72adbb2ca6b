// The registry client's auth and TLS against real docker-registry modes: htpasswd Basic auth,
// token auth with a local ES256 token server, and TLS with a self-signed certificate. Also checks
// that no password, token or Authorization value reaches an error or an event.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { TskoError } from '../../src/errors.js';
import { createEventBus, type EventBus, type TskoEvent } from '../../src/events.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { lookupCredentials } from '../../src/registry/credentials.js';
import type { Repository } from '../../src/registry/reference.js';
import { type DockerRegistry, startDockerRegistry } from '../support/docker-registry.js';
import { makeTempDir } from '../support/tmp.js';
import { digestOf, makeImage, pushImage } from '../support/registry-fixtures.js';
import { rejection } from '../support/transport-fixture.js';

function recordingBus(): { bus: EventBus; events: TskoEvent[] } {
  const bus = createEventBus();
  const events: TskoEvent[] = [];
  bus.subscribe((e) => events.push(e));
  return { bus, events };
}

/** Fails when any secret (or its Basic encoding) appears in the given texts. */
function assertNoSecrets(texts: string[], secrets: string[]): void {
  const all = texts.join('\n');
  for (const secret of secrets) {
    assert.ok(!all.includes(secret), `a secret leaked: ${secret.slice(0, 4)}…`);
  }
}

function errorTexts(err: TskoError): string[] {
  return [err.message, err.hint ?? '', err.detail ?? '', String((err.cause as Error | undefined)?.message ?? '')];
}

describe('Basic auth against docker-registry htpasswd mode', () => {
  let registry: DockerRegistry;
  let repo: Repository;
  before(async () => {
    registry = await startDockerRegistry({ auth: 'htpasswd' });
    repo = { registry: registry.host, repository: 'basic/app' };
  });
  after(async () => {
    await registry?.stop();
  });

  it('pushes and pulls with the right password from a docker config.json', async (t) => {
    const dir = await makeTempDir('docker-config', t);
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [`https://${registry.host}`]: { auth } } }));
    const { bus, events } = recordingBus();
    const client = new RegistryClient({ events: bus, credentials: (r) => lookupCredentials(r, { env: { DOCKER_CONFIG: dir } }) });
    t.after(() => client.close());
    const image = makeImage('oci');
    const digest = await pushImage(client, repo, image, 'v1');
    assert.deepEqual((await client.getManifest({ ...repo, digest })).bytes, image.manifest);
    assert.equal(await client.mountBlob({ ...repo, repository: 'basic/other' }, digestOf(image.layer), repo), true);
    assertNoSecrets(events.map((e) => JSON.stringify(e)), [registry.password!, auth]);
  });

  it('says authentication failed for the registry as the user on a wrong password', async (t) => {
    const { bus, events } = recordingBus();
    const password = `wrong-${randomBytes(6).toString('hex')}`;
    const client = new RegistryClient({ events: bus, credentials: async () => ({ username: registry.username!, password }) });
    t.after(() => client.close());
    const err = await rejection(client.headManifest({ ...repo, tag: 'v1' }));
    assert.equal(err.code, 'REGISTRY_AUTH');
    assert.equal(err.message, `authentication failed for ${registry.host} as ${registry.username}`);
    const basic = Buffer.from(`${registry.username}:${password}`).toString('base64');
    assertNoSecrets([...errorTexts(err), ...events.map((e) => JSON.stringify(e))], [password, basic]);
  });

  it('tells an anonymous caller to log in', async (t) => {
    const client = new RegistryClient({ credentials: async () => undefined });
    t.after(() => client.close());
    const err = await rejection(client.headBlob(repo, digestOf(Buffer.from('x'))));
    assert.equal(err.code, 'REGISTRY_AUTH');
    assert.match(err.message, new RegExp(`${registry.host.replace(/\./g, '\\.')} requires authentication`));
    assert.match(err.hint ?? '', /tsko login/);
  });
});

describe('Bearer token auth against docker-registry token mode', () => {
  let registry: DockerRegistry;
  let repo: Repository;
  before(async () => {
    registry = await startDockerRegistry({ auth: 'token' });
    repo = { registry: registry.host, repository: 'token/app' };
  });
  after(async () => {
    await registry?.stop();
  });

  const creds = (): RegistryClientOptions['credentials'] => async () => ({ username: registry.username!, password: registry.password! });

  it('pushes with credentials, asks for each scope set once, and mounts with the source scope', async (t) => {
    const { bus, events } = recordingBus();
    const client = new RegistryClient({ events: bus, credentials: creds() });
    t.after(() => client.close());
    const server = registry.tokenServer!;
    const before = server.requests.length;
    const image = makeImage('docker');
    const digest = await pushImage(client, repo, image, 'v1');
    assert.equal((await client.getManifest({ ...repo, tag: 'v1' })).digest, digest);
    const mine = server.requests.slice(before);
    assert.ok(mine.every((r) => r.user === registry.username && r.service === 'test-registry' && r.account === registry.username));
    // One exchange per scope set: pull (HEADs/GET) and pull,push (uploads, manifest).
    const sets = mine.map((r) => r.scopes.join(' '));
    assert.equal(new Set(sets).size, sets.length, `repeated token requests: ${sets.join(' | ')}`);
    assert.ok(sets.includes('repository:token/app:pull,push'));

    assert.equal(await client.mountBlob({ ...repo, repository: 'token/copy' }, digestOf(image.layer), repo), true);
    assert.deepEqual(server.requests.at(-1)?.scopes, ['repository:token/copy:pull,push', 'repository:token/app:pull']);

    const tokens = server.requests.length;
    assert.equal(await client.headBlob(repo, digestOf(image.layer)), true);
    assert.equal(server.requests.length, tokens, 'a cached token is reused');
    assertNoSecrets(events.map((e) => JSON.stringify(e)), [registry.password!]);
    assert.ok(!events.some((e) => JSON.stringify(e).includes('Bearer ey')), 'no token in events');
  });

  it('shares one token exchange among parallel uploads', async (t) => {
    const client = new RegistryClient({ credentials: creds() });
    t.after(() => client.close());
    const server = registry.tokenServer!;
    const before = server.requests.length;
    const blobs = Array.from({ length: 8 }, () => randomBytes(1000));
    await Promise.all(blobs.map((b) => client.uploadBlob({ ...repo, repository: 'token/parallel' }, digestOf(b), b.length, () => b)));
    assert.deepEqual(server.requests.slice(before).map((r) => r.scopes.join(' ')), ['repository:token/parallel:pull,push']);
  });

  it('fetches a new token once the old one has expired', async (t) => {
    const server = registry.tokenServer!;
    server.expiresIn = 1;
    t.after(() => {
      server.expiresIn = 300;
    });
    const client = new RegistryClient({ credentials: creds() });
    t.after(() => client.close());
    const digest = digestOf(Buffer.from('absent'));
    assert.equal(await client.headBlob(repo, digest), false);
    const count = server.requests.length;
    assert.equal(await client.headBlob(repo, digest), false);
    assert.equal(server.requests.length, count, 'still cached');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await client.headBlob(repo, digest), false);
    assert.equal(server.requests.length, count + 1, 'exchanged again after expiry');
  });

  it('exchanges again once when the registry rejects a token (expired mid-push)', async (t) => {
    const server = registry.tokenServer!;
    const client = new RegistryClient({ credentials: creds() });
    t.after(() => client.close());
    const data = randomBytes(2000);
    assert.equal(await client.headBlob(repo, digestOf(data)), false);
    // The cached token is still "fresh" for the client, but the next one the server issues is expired.
    server.expiredTokens = 1;
    const before = server.requests.length;
    await client.uploadBlob(repo, digestOf(data), data.length, () => data);
    assert.equal(server.requests.length - before, 2, `an expired token, then a good one: ${JSON.stringify(server.requests.slice(before))}`);
    assert.equal(server.expiredTokens, 0);
    assert.equal(await client.headBlob(repo, digestOf(data)), true);
  });

  it('lets anonymous callers pull but not push', async (t) => {
    const pusher = new RegistryClient({ credentials: creds() });
    const anonymous = new RegistryClient({ credentials: async () => undefined });
    t.after(() => Promise.all([pusher.close(), anonymous.close()]));
    const image = makeImage('oci');
    const digest = await pushImage(pusher, repo, image, 'public');
    assert.equal((await anonymous.getManifest({ ...repo, tag: 'public' })).digest, digest);
    const data = randomBytes(100);
    const err = await rejection(anonymous.uploadBlob(repo, digestOf(data), data.length, () => data));
    assert.equal(err.code, 'REGISTRY_AUTH');
    assert.match(err.message, /denied .*anonymous/);
    assert.match(err.hint ?? '', /tsko login/);
  });

  it('exchanges an identity token through the OAuth2 refresh-token grant', async (t) => {
    const server = registry.tokenServer!;
    const { bus, events } = recordingBus();
    const client = new RegistryClient({ events: bus, credentials: async () => ({ username: '<token>', password: server.refreshToken }) });
    t.after(() => client.close());
    const before = server.requests.length;
    const image = makeImage('oci');
    await pushImage(client, repo, image, 'oauth');
    const mine = server.requests.slice(before);
    assert.ok(mine.length > 0 && mine.every((r) => r.method === 'POST' && r.user === registry.username && !r.rejected));
    assertNoSecrets(events.map((e) => JSON.stringify(e)), [server.refreshToken]);
  });

  it('says authentication failed on a wrong password', async (t) => {
    const password = `wrong-${randomBytes(6).toString('hex')}`;
    const { bus, events } = recordingBus();
    const client = new RegistryClient({ events: bus, credentials: async () => ({ username: registry.username!, password }) });
    t.after(() => client.close());
    const err = await rejection(client.headManifest({ ...repo, tag: 'v1' }));
    assert.equal(err.code, 'REGISTRY_AUTH');
    assert.equal(err.message, `authentication failed for ${registry.host} as ${registry.username}`);
    assertNoSecrets([...errorTexts(err), ...events.map((e) => JSON.stringify(e))], [password, Buffer.from(`${registry.username}:${password}`).toString('base64')]);
  });

  it('reports a token server that is down', async (t) => {
    const other = await startDockerRegistry({ auth: 'token' });
    t.after(() => other.stop());
    await other.tokenServer!.stop();
    const client = new RegistryClient({ credentials: async () => ({ username: other.username!, password: other.password! }), retry: { tries: 1 } });
    t.after(() => client.close());
    const err = await rejection(client.headBlob({ registry: other.host, repository: 'x/y' }, digestOf(Buffer.from('x'))));
    assert.equal(err.code, 'REGISTRY_UNREACHABLE');
    assert.match(err.message, /token request to 127\.0\.0\.1:\d+ .*connection refused/);
  });
});

describe('TLS with a self-signed certificate', () => {
  let registry: DockerRegistry;
  let repo: Repository;
  let ca: string;
  before(async () => {
    registry = await startDockerRegistry({ tls: true, auth: 'htpasswd' });
    repo = { registry: registry.host, repository: 'tls/app' };
    ca = await readFile(registry.caFile!, 'utf8');
  });
  after(async () => {
    await registry?.stop();
  });

  it('refuses an untrusted certificate and says how to trust it', async (t) => {
    const client = new RegistryClient({ credentials: async () => ({ username: registry.username!, password: registry.password! }) });
    t.after(() => client.close());
    const err = await rejection(client.headManifest({ ...repo, tag: 'v1' }));
    assert.equal(err.code, 'REGISTRY_UNREACHABLE');
    assert.match(err.message, /TLS verification failed for 127\.0\.0\.1:\d+/);
    assert.match(err.hint ?? '', /NODE_EXTRA_CA_CERTS/);
    assert.match(err.hint ?? '', /--insecure-registry/);
  });

  it('pushes over verified TLS with the CA given', async (t) => {
    const client = new RegistryClient({ caCertificates: [ca], credentials: async () => ({ username: registry.username!, password: registry.password! }) });
    t.after(() => client.close());
    const image = makeImage('oci');
    const digest = await pushImage(client, repo, image, 'v1');
    assert.equal((await client.headManifest({ ...repo, tag: 'v1' }))?.digest, digest);
  });

  it('pushes without verification for an insecure registry', async (t) => {
    const client = new RegistryClient({ insecureRegistries: [registry.host], credentials: async () => ({ username: registry.username!, password: registry.password! }) });
    t.after(() => client.close());
    const image = makeImage('oci');
    await pushImage(client, repo, image, 'insecure');
    assert.ok(await client.headManifest({ ...repo, tag: 'insecure' }));
  });

  it('trusts NODE_EXTRA_CA_CERTS through Node defaults', async () => {
    const script = [
      `import { RegistryClient } from ${JSON.stringify(new URL('../../src/registry/client.js', import.meta.url).href)};`,
      `const c = new RegistryClient({ credentials: async () => ({ username: process.env.U, password: process.env.P }) });`,
      `try { console.log(await c.headBlob({ registry: process.env.R, repository: 'tls/app' }, 'sha256:' + '0'.repeat(64))); } finally { await c.close(); }`,
    ].join('\n');
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: registry.caFile!, U: registry.username!, P: registry.password!, R: registry.host },
      timeout: 20_000,
    });
    assert.equal(stdout.trim(), 'false');
  });
});

describe('Authorization stays with the registry that challenged', () => {
  // docker-registry's filesystem storage never redirects, so blob storage elsewhere is two small
  // servers here: a Basic-auth "registry" that redirects blob GETs, and a "bucket" on another port.
  it('follows a blob redirect to another origin without Authorization', async (t) => {
    const { createServer } = await import('node:http');
    const blob = randomBytes(3000);
    const digest = digestOf(blob);
    const bucketSaw: Array<string | undefined> = [];
    const bucket = createServer((req, res) => {
      bucketSaw.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    });
    await new Promise<void>((r) => bucket.listen(0, '127.0.0.1', r));
    const bucketPort = (bucket.address() as { port: number }).port;
    const password = randomBytes(8).toString('hex');
    const expected = `Basic ${Buffer.from(`u:${password}`).toString('base64')}`;
    const registrySaw: Array<string | undefined> = [];
    const fake = createServer((req, res) => {
      registrySaw.push(req.headers.authorization);
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
        return;
      }
      if (req.url === '/v2/') res.writeHead(200).end('{}');
      else res.writeHead(307, { location: `http://127.0.0.1:${bucketPort}/bucket/blob?sig=abc` }).end();
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(fake.address() as { port: number }).port}`;
    const client = new RegistryClient({ credentials: async () => ({ username: 'u', password }) });
    t.after(async () => {
      await client.close();
      await new Promise((r) => fake.close(r));
      await new Promise((r) => bucket.close(r));
    });
    assert.deepEqual(await client.getBlob({ registry: host, repository: 'r/x' }, digest), blob);
    assert.ok(registrySaw.includes(expected), 'the registry got credentials after its challenge');
    assert.deepEqual(bucketSaw, [undefined], 'the other origin got none');
  });
});
