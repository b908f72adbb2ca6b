// The decorators on the two seams, each on the fixed Builder or Publisher: limiting and caching
// builds (with invalidate), several sinks, one publish per result, a record in the order asked,
// and the push stage with its real outcome.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TskoError } from '../../src/errors.js';
import { createEventBus, type EventOf, type TskoEvent } from '../../src/events.js';
import { cacheBuilds, limitBuilds } from '../../src/publish/build-decorators.js';
import type { BuiltImage } from '../../src/publish/builder.js';
import { fixedBuilder, fixedImage, fixedPublisher, fixedTarget } from '../../src/publish/fixed.js';
import { createLimiter } from '../../src/publish/limiter.js';
import { buildForPlatforms, type BuildResult } from '../../src/publish/platforms.js';
import { cachePublishes, multiPublisher, recordPublishes, stagePushes } from '../../src/publish/publish-decorators.js';
import type { Publisher } from '../../src/publish/publisher.js';

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64' };

function context() {
  const bus = createEventBus();
  const events: TskoEvent[] = [];
  bus.subscribe((e) => events.push(e));
  return { context: { events: bus }, events };
}

async function resultOf(importPath: string, text: string): Promise<BuildResult> {
  const built = await fixedImage(importPath, text);
  return { importPath, images: [built], digest: built.image.manifestDigest };
}

describe('build decorators', () => {
  it('cacheBuilds builds an import path and platform once, forgets a failure, and builds again after invalidate', async () => {
    const image = await fixedImage('example.com/a', 'a');
    let fail = true;
    const inner = fixedBuilder(new Map([['example.com/a', () => (fail ? new TskoError('GO_BUILD', 'broken') : image)]]));
    const builder = cacheBuilds(inner);
    const { context: ctx } = context();
    const target = fixedTarget('example.com/a');
    await assert.rejects(builder.build(target, AMD64, ctx), /broken/);
    fail = false;
    const [one, two] = await Promise.all([builder.build(target, AMD64, ctx), builder.build(target, AMD64, ctx)]);
    assert.equal(one, two);
    await builder.build(target, ARM64, ctx);
    assert.deepEqual(inner.builds, ['example.com/a@linux/amd64', 'example.com/a@linux/amd64', 'example.com/a@linux/arm64'], 'the failure was not kept; amd64 once more, arm64 once');
    builder.invalidate('example.com/a');
    await builder.build(target, AMD64, ctx);
    assert.equal(inner.builds.length, 4, 'invalidate makes the next build run');
  });

  it('limitBuilds runs at most its limit at once, across import paths and platforms', async () => {
    let running = 0;
    let most = 0;
    const slow = async (platform: typeof AMD64): Promise<BuiltImage> => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return fixedImage('example.com/a', 'a', platform);
    };
    const inner = fixedBuilder(new Map([['example.com/a', slow], ['example.com/b', slow]]));
    const builder = limitBuilds(inner, createLimiter(2));
    const { context: ctx } = context();
    await Promise.all([
      buildForPlatforms(builder, fixedTarget('example.com/a'), [AMD64, ARM64], ctx),
      buildForPlatforms(builder, fixedTarget('example.com/b'), [AMD64, ARM64], ctx),
    ]);
    assert.equal(inner.builds.length, 4);
    assert.equal(most, 2);
  });
});

describe('publish decorators', () => {
  it('multiPublisher writes every sink, files first, and answers with the primary one', async () => {
    const primary = fixedPublisher('registry.test');
    const layout = fixedPublisher('layout');
    const tarball = fixedPublisher('tarball');
    const { context: ctx } = context();
    const published = await multiPublisher(primary, [layout, tarball]).publish(await resultOf('example.com/a', 'a'), ctx);
    assert.match(published.reference, /^registry\.test\/a@sha256:/);
    assert.deepEqual([layout.published, tarball.published, primary.published], [['example.com/a'], ['example.com/a'], ['example.com/a']]);
    const failing = fixedPublisher('layout', new TskoError('OUTPUT', 'disk full'));
    const after = fixedPublisher('registry.test');
    await assert.rejects(multiPublisher(after, [failing]).publish(await resultOf('example.com/a', 'a'), ctx), /disk full/);
    assert.deepEqual(after.published, [], 'nothing is pushed after a sink failed');
  });

  it('cachePublishes publishes each result once; recordPublishes under it lists each once', async () => {
    const inner = fixedPublisher('registry.test');
    const recorder = recordPublishes(inner);
    const publisher = cachePublishes(recorder);
    const { context: ctx } = context();
    const [a, b] = await Promise.all([resultOf('example.com/a', 'a'), resultOf('example.com/b', 'b')]);
    await Promise.all([publisher.publish(b, ctx), publisher.publish(a, ctx), publisher.publish(b, ctx)]);
    assert.deepEqual(inner.published, ['example.com/b', 'example.com/a']);
    assert.deepEqual(recorder.records.map((r) => r.importPath).sort(), ['example.com/a', 'example.com/b']);
    const refusing = recordPublishes(fixedPublisher('x', new TskoError('REGISTRY_AUTH', 'no')));
    await assert.rejects(refusing.publish(a, ctx), /no/);
    assert.deepEqual(refusing.records, [], 'a failed publish is not recorded');
    publisher.invalidate('example.com/b');
    await publisher.publish(b, ctx);
    assert.deepEqual(inner.published, ['example.com/b', 'example.com/a', 'example.com/b'], 'invalidate: the next publish pushes again');
  });

  it('stagePushes reports the push stage with its real outcome, and `published` only after a push', async () => {
    const { context: ok, events: okEvents } = context();
    await stagePushes(fixedPublisher('registry.test')).publish(await resultOf('example.com/a', 'a'), ok);
    const end = (events: TskoEvent[]) => events.find((e): e is EventOf<'stage.end'> => e.type === 'stage.end');
    assert.equal(end(okEvents)?.ok, true);
    assert.ok(okEvents.some((e) => e.type === 'published'));

    const { context: bad, events: badEvents } = context();
    const refused: Publisher = fixedPublisher('registry.test', new TskoError('REGISTRY_AUTH', 'denied'));
    await assert.rejects(stagePushes(refused).publish(await resultOf('example.com/a', 'a'), bad), /denied/);
    assert.equal(end(badEvents)?.ok, false);
    assert.equal(end(badEvents)?.cancelled, undefined, 'a refusal is a failure, not a cancellation');
    assert.ok(!badEvents.some((e) => e.type === 'published'));
  });
});
