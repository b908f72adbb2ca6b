// Base images cost one request per tag and none per digest once cached on disk, and their layers
// are copied from another registry once (counted through a pass-through proxy in front of the
// base's registry).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { runTsko } from '../support/tsko-cli.js';

let baseRegistry: DockerRegistry;
let target: DockerRegistry;
let proxy: FaultProxy;
let cacheHome: string;

function build(base: string, args: string[] = []) {
  return runTsko(['build', './examples/hello', '-B', ...args], {
    env: { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${target.host}/app`, KO_DEFAULTBASEIMAGE: base },
  });
}

describe('base image cache', () => {
  before(async () => {
    baseRegistry = await startDockerRegistry();
    target = await startDockerRegistry();
    proxy = await startFaultProxy({ upstream: baseRegistry.url, rate: 0 });
    cacheHome = await makeTempDir('base-cache');
    // A base image in the base registry: tsko's own build of examples/with-kodata.
    const seeded = await runTsko(['build', './examples/with-kodata', '--bare', '--tags', 'latest'], {
      env: { XDG_CACHE_HOME: await makeTempDir('seed-cache'), GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${baseRegistry.host}/bases/kodata` },
    });
    assert.equal(seeded.code, 0, seeded.stderr);
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all([baseRegistry?.stop(), target?.stop()]);
  });

  it('a tag costs one HEAD once cached; layers are copied once; a digest costs nothing', async (t) => {
    const base = `${proxy.host}/bases/kodata:latest`;
    const first = await build(base);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /copied blob/);
    const firstRequests = proxy.log.length;
    assert.ok(firstRequests >= 3, `manifest, config and layers fetched: ${proxy.log.join(', ')}`);

    proxy.log.length = 0;
    const second = await build(base, ['--tags', 'second']);
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /copied blob/);
    // (`GET /v2/` is the client's scheme probe of a loopback registry: http or https.)
    const baseRequests = proxy.log.map((line) => line.split(' -> ')[0]).filter((line) => line !== 'GET /v2/');
    assert.deepEqual(baseRequests, ['HEAD /v2/bases/kodata/manifests/latest'], 'one request for the tag, the rest from the disk cache');

    const digest = /Using base .*@(sha256:[a-f0-9]{64})/.exec(second.stderr)?.[1];
    assert.ok(digest, second.stderr);
    proxy.log.length = 0;
    const third = await build(`${proxy.host}/bases/kodata@${digest}`, ['--tags', 'third']);
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual(proxy.log, [], 'a digest reference costs no request at all, not even the probe');
    await checkImage(third.stdout.trim().replace(/:third@/, '@'), { insecure: true, expectBody: 'hello v1\n', t });
  });
});
