// Retries and refusals through a fault-injecting proxy in front of a real docker-registry:
// 5xx and 429 (Retry-After) answers, dropped connections before and after the registry acted,
// slow answers, a forged Docker-Content-Digest, abort, and a seeded soak at a 20 % fault rate.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createEventBus, type TskoEvent } from '../../src/events.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import type { Repository } from '../../src/registry/reference.js';
import { type DockerRegistry, startDockerRegistry } from '../support/docker-registry.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { digestOf, makeImage, pushImage } from '../support/registry-fixtures.js';
import { rejection } from '../support/transport-fixture.js';

type RetryEvent = Extract<TskoEvent, { type: 'retry' }>;

describe('RegistryClient retries through a fault proxy', () => {
  let registry: DockerRegistry;
  let proxy: FaultProxy;
  let retries: RetryEvent[];
  const clients: RegistryClient[] = [];

  before(async () => {
    registry = await startDockerRegistry();
    proxy = await startFaultProxy({ upstream: registry.url });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await proxy?.stop();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.script.length = 0;
    retries = [];
  });

  const makeClient = (options: RegistryClientOptions = {}): RegistryClient => {
    const bus = createEventBus();
    bus.subscribe((e) => {
      if (e.type === 'retry') retries.push(e);
    });
    const client = new RegistryClient({ events: bus, retry: { baseDelayMs: 20 }, ...options });
    clients.push(client);
    return client;
  };
  const repo = (name: string): Repository => ({ registry: proxy.host, repository: name });

  it('retries 503 and 502, emitting a retry event each time', async () => {
    const client = makeClient();
    proxy.script.push({ match: /^HEAD .*\/manifests\//, fault: { kind: 'status', status: 503 } }, { match: /^HEAD .*\/manifests\//, fault: { kind: 'status', status: 502 } });
    assert.equal(await client.headManifest({ ...repo('retry/a'), tag: 'latest' }), undefined);
    assert.deepEqual(retries.map((e) => [e.attempt, e.cause]), [[1, '503'], [2, '502']]);
    assert.match(retries[0]!.operation, /HEAD manifest .*retry\/a:latest/);
  });

  it('honours Retry-After on 429', async () => {
    const client = makeClient();
    proxy.script.push({ match: /^HEAD /, fault: { kind: 'status', status: 429, retryAfter: '1' } });
    const started = Date.now();
    assert.equal(await client.headBlob(repo('retry/b'), digestOf(Buffer.from('x'))), false);
    assert.ok(Date.now() - started >= 950, `waited only ${Date.now() - started} ms`);
    assert.equal(retries.length, 1);
    assert.ok(retries[0]!.delayMs >= 1000);
  });

  it('gives up after the last try, naming registry, operation and status', async () => {
    const client = makeClient({ retry: { tries: 3, baseDelayMs: 10 } });
    proxy.script.push({ match: /^GET .*\/manifests\//, fault: { kind: 'status', status: 500 }, times: 10 });
    const err = await rejection(client.getManifest({ ...repo('retry/c'), tag: 'v1' }));
    assert.equal(err.code, 'REGISTRY_HTTP');
    assert.match(err.message, new RegExp(`GET manifest ${proxy.host}/retry/c:v1 failed: ${proxy.host} answered 500 UNAVAILABLE: injected fault`));
    assert.equal(retries.length, 2);
  });

  it('does not retry a 4xx other than 408/429', async () => {
    const client = makeClient();
    proxy.script.push({ match: /^GET .*\/manifests\//, fault: { kind: 'status', status: 400 } });
    const err = await rejection(client.getManifest({ ...repo('retry/d'), tag: 'v1' }));
    assert.equal(err.code, 'REGISTRY_HTTP');
    assert.match(err.message, /answered 400/);
    assert.equal(retries.length, 0);
  });

  it('reports a 401 whose WWW-Authenticate cannot be used', async () => {
    const client = makeClient();
    proxy.script.push({ match: /^GET .*\/manifests\//, fault: { kind: 'status', status: 401, headers: { 'www-authenticate': '@@@ not a challenge' } } });
    const err = await rejection(client.getManifest({ ...repo('auth/garbled'), tag: 'v1' }));
    assert.equal(err.code, 'REGISTRY_AUTH');
    assert.match(err.message, /without a usable WWW-Authenticate challenge/);
  });

  it('shows each registry Warning once and otherwise ignores it', async () => {
    const warnings: string[] = [];
    const bus = createEventBus();
    bus.subscribe((e) => {
      if (e.type === 'log' && e.level === 'warn') warnings.push(e.message);
    });
    const client = new RegistryClient({ events: bus });
    clients.push(client);
    const warning = { 'warning': '299 - "this repository is \\"deprecated\\""' };
    proxy.script.push({ match: /^HEAD /, fault: { kind: 'status', status: 404, headers: warning }, times: 2 });
    assert.equal(await client.headBlob(repo('warn/a'), digestOf(Buffer.from('w'))), false);
    assert.equal(await client.headBlob(repo('warn/a'), digestOf(Buffer.from('w'))), false);
    assert.deepEqual(warnings, [`registry warning from ${proxy.host}: this repository is "deprecated"`]);
  });

  it('restarts an upload whose connection dropped, reopening the body', async () => {
    const client = makeClient();
    const data = randomBytes(200_000);
    proxy.script.push({ match: /^PUT .*\/blobs\/uploads\//, fault: { kind: 'reset' } });
    let opened = 0;
    await client.uploadBlob(repo('retry/e'), digestOf(data), data.length, () => {
      opened++;
      return data;
    });
    assert.equal(opened, 2);
    assert.equal(retries.length, 1);
    assert.match(retries[0]!.cause, /ECONNRESET|UND_ERR_SOCKET|EPIPE/);
    assert.deepEqual(await client.getBlob(repo('retry/e'), digestOf(data)), data);
  });

  it('survives a lost answer after the registry stored the blob', async () => {
    const client = makeClient();
    const data = randomBytes(5000);
    proxy.script.push({ match: /^PUT .*\/blobs\/uploads\//, fault: { kind: 'reset-after' } });
    await client.uploadBlob(repo('retry/f'), digestOf(data), data.length, () => data);
    assert.equal(retries.length, 1);
    assert.equal(await client.headBlob(repo('retry/f'), digestOf(data)), true);
  });

  it('retries a response that is too slow', async () => {
    const client = makeClient({ responseTimeoutMs: 300 });
    proxy.script.push({ match: /^HEAD /, fault: { kind: 'delay', ms: 1500 } });
    assert.equal(await client.headBlob(repo('retry/g'), digestOf(Buffer.from('y'))), false);
    assert.equal(retries.length, 1);
    assert.match(retries[0]!.cause, /TIMEOUT/);
  });

  it('stops promptly when aborted during a slow answer or a backoff', async () => {
    const client = makeClient({ retry: { baseDelayMs: 5000, maxElapsedMs: 60_000 } });
    proxy.script.push({ match: /^HEAD /, fault: { kind: 'delay', ms: 5000 } });
    let started = Date.now();
    let err = await rejection(client.headBlob(repo('retry/h'), digestOf(Buffer.from('z')), AbortSignal.timeout(100)));
    assert.equal(err.code, 'ABORTED');
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);

    proxy.script.length = 0;
    proxy.script.push({ match: /^HEAD /, fault: { kind: 'status', status: 503 } });
    started = Date.now();
    err = await rejection(client.headBlob(repo('retry/h'), digestOf(Buffer.from('z')), AbortSignal.timeout(200)));
    assert.equal(err.code, 'ABORTED');
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  });

  it('refuses a manifest the registry claims to have stored under another digest', async () => {
    const client = makeClient();
    const image = makeImage('oci');
    const r = repo('forged/a');
    for (const blob of [image.layer, image.config]) await client.uploadBlob(r, digestOf(blob), blob.length, () => blob);
    const forged = digestOf(Buffer.from('forged'));
    proxy.script.push({ match: /^PUT .*\/manifests\//, fault: { kind: 'forge-digest', digest: forged } });
    const err = await rejection(client.putManifest({ ...r, tag: 'v1' }, image.manifest, image.mediaType));
    assert.equal(err.code, 'REGISTRY_DIGEST');
    assert.match(err.message, new RegExp(forged));

    // Reading: a forged header over genuine bytes is refused too.
    await client.putManifest({ ...r, tag: 'v2' }, image.manifest, image.mediaType);
    proxy.script.push({ match: /^GET .*\/manifests\//, fault: { kind: 'forge-digest', digest: forged } });
    assert.equal((await rejection(client.getManifest({ ...r, tag: 'v2' }))).code, 'REGISTRY_DIGEST');
    proxy.script.push({ match: /^HEAD .*\/manifests\//, fault: { kind: 'forge-digest', digest: forged } });
    assert.equal((await rejection(client.headManifest({ ...r, digest: digestOf(image.manifest) }))).code, 'REGISTRY_DIGEST');
  });
});

describe('RegistryClient soak through 20 % injected faults', () => {
  it('pushes 15 images that all read back intact', async (t) => {
    const registry = await startDockerRegistry();
    const proxy = await startFaultProxy({ upstream: registry.url, rate: 0.2, seed: 7 });
    const retries: RetryEvent[] = [];
    const bus = createEventBus();
    bus.subscribe((e) => {
      if (e.type === 'retry') retries.push(e);
    });
    const client = new RegistryClient({ events: bus, retry: { tries: 8, baseDelayMs: 10, factor: 2, maxElapsedMs: 20_000 }, responseTimeoutMs: 5000 });
    const clean = new RegistryClient();
    t.after(async () => {
      await Promise.all([client.close(), clean.close()]);
      await proxy.stop();
      await registry.stop();
    });
    const pushed: Array<{ tag: string; image: ReturnType<typeof makeImage>; digest: string }> = [];
    for (let i = 0; i < 15; i++) {
      const image = makeImage(i % 2 === 0 ? 'oci' : 'docker');
      const digest = await pushImage(client, { registry: proxy.host, repository: 'soak/app' }, image, `v${i}`);
      pushed.push({ tag: `v${i}`, image, digest });
    }
    assert.ok(proxy.injected >= 10, `only ${proxy.injected} faults injected`);
    assert.equal(retries.length > 0, true);
    // Read back directly from the registry, not through the proxy.
    const direct = { registry: registry.host, repository: 'soak/app' };
    for (const { tag, image, digest } of pushed) {
      const got = await clean.getManifest({ ...direct, tag });
      assert.equal(got.digest, digest);
      assert.deepEqual(await clean.getBlob(direct, digestOf(image.layer)), image.layer);
      assert.deepEqual(await clean.getBlob(direct, digestOf(image.config)), image.config);
    }
  });
});
