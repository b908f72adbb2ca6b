// Issue 7's "done when": through a fault-injecting proxy at 20 % injected faults (seeded: resets
// before and after the registry acted, 500/502/503, 429 with Retry-After, slow answers), 50
// consecutive builds each push a new binary layer, every retry shows as an event, and every image
// reads back intact with skopeo (straight from the registry) and unpacks with umoci. The 50 run
// in-process through one pipeline's builder and one registry writer (a tag each), as a dev session
// keeps them; a few real CLI runs through the same proxy follow.
import assert from 'node:assert/strict';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import { createEventBus, type TskoEvent } from '../../src/events.js';
import { makePipeline } from '../../src/publish/pipeline.js';
import { type DockerRegistry, startDockerRegistry } from '../support/docker-registry.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { goCacheDir } from '../support/go-env.js';
import { skopeoCopyToLayout, umociUnpack } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko } from '../support/tsko-cli.js';

const BUILDS = 50;
const RATE = 0.2;
const SEED = 20240607;

type RetryEvent = Extract<TskoEvent, { type: 'retry' }>;

/** Requests the proxy made fail (as opposed to merely delaying them), from its log. */
function failedRequests(log: readonly string[]): string[] {
  return log.filter((line) => /-> (reset|reset after upstream|\d{3} \(injected\))$/.test(line));
}

/**
 * The endpoint probe (GET /v2/) only learns the scheme and the auth challenge: any HTTP answer
 * settles that, so an injected status there costs no retry (a dropped connection does).
 */
const isProbe = (line: string): boolean => /^GET \/v2\/ -> \d{3} \(injected\)$/.test(line);

/**
 * Abandoning an upload session (after a broken stream, or a blob the registry turned out to have)
 * is best effort: the registry drops an unfinished session on its own, so a failed DELETE costs
 * no retry.
 */
const isSessionCleanup = (line: string): boolean => /^DELETE \/v2\/.+\/blobs\/uploads\/\S+ -> /.test(line);

/** The digest a tag points at in an OCI layout's index.json. */
async function layoutDigest(layout: string, tag: string): Promise<string | undefined> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)?.digest;
}

describe('tsko build through a flaky network (20 % injected faults)', () => {
  let registry: DockerRegistry;
  let proxy: FaultProxy;
  let src: string;
  let cacheHome: string;

  before(async () => {
    registry = await startDockerRegistry();
    proxy = await startFaultProxy({ upstream: registry.url, rate: RATE, seed: SEED });
    cacheHome = await makeTempDir('flaky-cache');
    src = await makeTempDir('flaky-src');
    await cp(join(repoRoot, 'examples/hello'), src, { recursive: true });
    await writeFile(join(src, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  const setVersion = async (version: string): Promise<void> => {
    const file = join(src, 'main.go');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace(/const version = ".*"/, `const version = ${JSON.stringify(version)}`));
  };

  it(`${BUILDS} consecutive builds push, every retry is an event, and every image reads back intact`, async (t) => {
    const config = await resolveConfig({ cwd: src, env: { ...process.env, XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir() }, fresh: true });
    const events = createEventBus();
    const retries: RetryEvent[] = [];
    const stageMs: Record<string, number> = {};
    events.subscribe((e) => {
      if (e.type === 'retry') retries.push(e);
      if (e.type === 'stage.end') stageMs[e.stage] = (stageMs[e.stage] ?? 0) + e.ms;
    });
    const pipeline = makePipeline(config, { events, dockerRepo: `${proxy.host}/flaky/hello` });
    t.after(() => pipeline.close());
    // One pipeline (client, writer, streamed uploads) for every build and push, as a dev session
    // keeps it: from the second build on, the binary layer is streamed while it is compressed, and
    // a stream the faults broke is retried from the layer file (a retry event too).
    const target = await pipeline.resolve('.');

    const pushed: Array<{ tag: string; version: string; digest: string; blobsPushed: number; reference: string }> = [];
    const started = performance.now();
    for (let i = 0; i < BUILDS; i++) {
      const version = `hello flaky ${i} ${Date.now()}`;
      await setVersion(version);
      const context = { events, signal: AbortSignal.timeout(120_000) };
      pipeline.invalidate(target.pkg.importPath);
      const built = await pipeline.build(target, context, [{ os: 'linux', architecture: 'amd64' }]);
      const result = await pipeline.publisher.publish(built, context);
      // Read back past the proxy, by digest: `host/flaky/hello/hello-<hash>@sha256:…`.
      const reference = `${registry.host}${result.reference.slice(proxy.host.length).replace(/:[^/@]+(?=@)/, '')}`;
      pushed.push({ tag: `v${i}`, version, digest: result.digest, blobsPushed: result.stats.blobsPushed, reference });
    }
    const buildMs = performance.now() - started;

    const failed = failedRequests(proxy.log);
    const retried = failed.filter((line) => !isProbe(line) && !isSessionCleanup(line));
    t.diagnostic(
      `${BUILDS} builds in ${(buildMs / 1000).toFixed(1)} s; ${proxy.log.length} requests, ${proxy.injected} faults injected ` +
        `(${failed.length} failed requests), ${retries.length} retries, max attempt ${Math.max(0, ...retries.map((r) => r.attempt))}; ` +
        `${(retries.reduce((sum, r) => sum + r.delayMs, 0) / 1000).toFixed(1)} s of backoff; ` +
        Object.entries(stageMs).map(([stage, ms]) => `${stage} ${(ms / 1000).toFixed(1)} s`).join(', '),
    );
    assert.ok(proxy.injected >= BUILDS, `only ${proxy.injected} faults injected`);
    // Every request that failed cost exactly one retry, and each retry is an event with its cause.
    assert.equal(retries.length, retried.length, `retry events vs failed requests:\n${failed.join('\n')}`);
    for (const r of retries) assert.match(r.cause, /^(\d{3}|[A-Z_]+)$/, `cause of ${r.operation}`);
    // Each build pushed a new binary layer and a new config, at least.
    for (const p of pushed) assert.ok(p.blobsPushed >= 2, `${p.tag} pushed ${p.blobsPushed} blobs`);
    assert.equal(new Set(pushed.map((p) => p.digest)).size, BUILDS, 'every build is a new image');

    // Read back straight from the registry, so the check itself does not meet the faults; four at
    // a time, each image in its own layout.
    const work = await makeTempDir('flaky-readback', t);
    const readStarted = performance.now();
    const queue = [...pushed];
    const readBack = async (): Promise<void> => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        const layout = join(work, `layout-${p.tag}`);
        await skopeoCopyToLayout(p.reference, layout, p.tag, { insecure: true });
        assert.equal(await layoutDigest(layout, p.tag), p.digest, `${p.tag}: the registry holds the manifest tsko pushed`);
        const bundle = join(work, `bundle-${p.tag}`);
        await umociUnpack(layout, p.tag, bundle);
        const binary = await readFile(join(bundle, 'rootfs/ko-app/hello'));
        assert.ok(binary.includes(Buffer.from(p.version)), `${p.tag}: the unpacked binary is the one built with "${p.version}"`);
        await Promise.all([rm(bundle, { recursive: true, force: true }), rm(layout, { recursive: true, force: true })]);
      }
    };
    await Promise.all([readBack(), readBack(), readBack(), readBack()]);
    t.diagnostic(`read back ${BUILDS} images with skopeo + umoci in ${((performance.now() - readStarted) / 1000).toFixed(1)} s`);
  });

  it('tsko build (the CLI) pushes through the same faults and prints every retry', async () => {
    for (let i = 0; i < 3; i++) {
      const before = proxy.log.length;
      const result = await runTsko(['build', '.', '--bare', '--tags', `cli${i}`, '--image-label', `run=${i}`], {
        cwd: src,
        env: { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${proxy.host}/flaky/cli` },
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^${proxy.host.replace(/\./g, '\\.')}/flaky/cli:cli${i}@sha256:[a-f0-9]{64}\\n$`));
      const failed = failedRequests(proxy.log.slice(before)).filter((line) => !isProbe(line));
      const printed = result.stderr.split('\n').filter((line) => line.startsWith('retrying '));
      assert.equal(printed.length, failed.length, `retry lines vs failed requests:\n${result.stderr}\n${failed.join('\n')}`);
    }
  });
});
