// The iteration runner with the fixed Builder and Publisher and a scripted target: every stage's
// stage.end says what really happened (ok only when it succeeded, cancelled when it was stopped),
// deploy and ready follow each other (the local target's deploy runs alongside the push), a failed stage ends the iteration with the matching result, and
// what the JSON reporter prints and the dashboard shows follow from those events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Rollout, Target } from '../../src/deploy/target.js';
import { runIteration, runtimeIdentity, type IterationRequest } from '../../src/dev/iteration.js';
import { runnableOf } from '../../src/image/assemble.js';
import type { Layer, Platform, RunnableImage } from '../../src/image/types.js';
import type { Builder, BuildContext, BuiltImage, ResolvedTarget } from '../../src/publish/builder.js';
import { stage } from '../../src/stage.js';
import { TskoError } from '../../src/errors.js';
import { createEventBus, type EventOf, type TskoEvent } from '../../src/events.js';
import { fixedBuilder, fixedImage, fixedPublisher, fixedTarget, type FixedBuild } from '../../src/publish/fixed.js';
import { buildForPlatforms } from '../../src/publish/platforms.js';
import { stagePushes } from '../../src/publish/publish-decorators.js';
import type { Publisher } from '../../src/publish/publisher.js';
import { createJsonReporter } from '../../ui/json.js';
import { reduceAll } from '../../ui/dashboard/state.js';

const PLATFORM = { os: 'linux', architecture: 'amd64' };
const APP = 'example.com/app';

type Failing = 'deploy' | 'ready' | undefined;

/** A target whose deploy or ready fails on request; it records the calls. */
function scriptedTarget(fail: () => Failing): Target & { calls: string[] } {
  const calls: string[] = [];
  return {
    kind: 'local',
    calls,
    async deploy(request): Promise<Rollout> {
      calls.push(`deploy ${request.iteration}`);
      if (fail() === 'deploy') throw new TskoError('DEPLOY', 'the target refused the image');
      return {
        async ready() {
          calls.push(`ready ${request.iteration}`);
          if (fail() === 'ready') throw new TskoError('DEPLOY', 'the revision never answered', { hint: 'the previous one keeps serving' });
          return { revision: `app-0000${request.iteration}`, url: 'http://127.0.0.1:1' };
        },
      };
    },
    close: async () => undefined,
  };
}

interface Run {
  events: TskoEvent[];
  json: string[];
  request: IterationRequest;
}

function setup(options: { build: FixedBuild; publisher?: Publisher; failing?: Failing; signal?: AbortSignal }): Run {
  const bus = createEventBus();
  const events: TskoEvent[] = [];
  const json: string[] = [];
  bus.subscribe((e) => events.push(e));
  bus.subscribe(createJsonReporter((line) => json.push(line)));
  const builder = fixedBuilder(new Map([[APP, options.build]]));
  const publisher = stagePushes(options.publisher ?? fixedPublisher('registry.test/team'));
  const request: IterationRequest = {
    service: 'app',
    iteration: 1,
    trigger: ['main.go'],
    since: performance.now(),
    target: fixedTarget(APP),
    pipeline: { build: (target, context) => buildForPlatforms(builder, target, [PLATFORM], context), publisher, invalidate: () => undefined },
    deployTo: scriptedTarget(() => options.failing),
    events: bus,
    signal: options.signal ?? new AbortController().signal,
  };
  return { events, json, request };
}

const ends = (events: TskoEvent[]) => events.filter((e): e is EventOf<'stage.end'> => e.type === 'stage.end').map((e) => `${e.stage}:${e.ok ? 'ok' : e.cancelled ? 'cancelled' : 'failed'}`);
const starts = (events: TskoEvent[]) => events.filter((e): e is EventOf<'stage.start'> => e.type === 'stage.start').map((e) => e.stage);
const endOf = (events: TskoEvent[]) => events.find((e): e is EventOf<'iteration.end'> => e.type === 'iteration.end');

describe('the iteration runner', () => {
  it('runs trigger, build, layer, push, deploy and ready in turn, each ok, and ends deployed', async () => {
    const image = await fixedImage(APP, 'v1');
    const run = setup({ build: image });
    const outcome = await runIteration(run.request);
    assert.equal(outcome.result, 'deployed');
    assert.deepEqual(starts(run.events), ['trigger', 'build', 'layer', 'push', 'deploy', 'ready']);
    assert.deepEqual(ends(run.events), ['trigger:ok', 'build:ok', 'layer:ok', 'push:ok', 'deploy:ok', 'ready:ok']);
    // Stages follow each other: each one starts after the one before it ended.
    const stageEvents = run.events.filter((e) => e.type === 'stage.start' || e.type === 'stage.end').map((e) => e.type);
    assert.deepEqual(stageEvents, Array.from({ length: 6 }, () => ['stage.start', 'stage.end']).flat());
    const end = endOf(run.events);
    assert.equal(end?.result, 'deployed');
    assert.equal(end?.revision, 'app-00001');
    assert.equal(end?.reference, `registry.test/team/app@${image.image.manifestDigest}`);
    assert.ok(run.events.every((e) => e.service === 'app' && e.iteration === 1), 'every event names its service and iteration');
    assert.ok(outcome.identity, 'the identity of what now serves');
  });

  const failures: Array<{ stage: string; result: string; setup: () => Promise<Parameters<typeof setup>[0]>; after: string[] }> = [
    {
      stage: 'build',
      result: 'build-failed',
      setup: async () => ({
        build: new TskoError('GO_BUILD', 'go build failed for example.com/app (linux/amd64): ./main.go:3:2: undefined: x', {
          diagnostics: [{ file: 'main.go', line: 3, column: 2, message: 'undefined: x' }],
        }),
      }),
      after: [],
    },
    {
      stage: 'push',
      result: 'push-failed',
      setup: async () => ({ build: await fixedImage(APP, 'v1'), publisher: fixedPublisher('registry.test', new TskoError('REGISTRY_AUTH', 'registry.test denied the push')) }),
      after: [],
    },
    { stage: 'deploy', result: 'deploy-failed', setup: async () => ({ build: await fixedImage(APP, 'v1'), failing: 'deploy' }), after: [] },
    { stage: 'ready', result: 'deploy-failed', setup: async () => ({ build: await fixedImage(APP, 'v1'), failing: 'ready' }), after: [] },
  ];
  for (const failure of failures) {
    it(`reports a failed ${failure.stage} as ok:false on that stage, ends ${failure.result}, and runs nothing after it`, async () => {
      const run = setup(await failure.setup());
      const outcome = await runIteration(run.request);
      assert.equal(outcome.result, failure.result);
      const all = ['trigger', 'build', 'layer', 'push', 'deploy', 'ready'];
      const upTo = all.slice(0, all.indexOf(failure.stage));
      assert.deepEqual(ends(run.events), [...upTo.map((s) => `${s}:ok`), `${failure.stage}:failed`]);
      assert.ok(outcome.error, 'the error travels with the result');
      assert.equal(endOf(run.events)?.error?.message, outcome.error?.message);

      // --json prints the same verdict on that stage.
      const printed = run.json.map((line) => JSON.parse(line) as TskoEvent).find((e) => e.type === 'stage.end' && e.stage === failure.stage);
      assert.equal(printed?.type === 'stage.end' && printed.ok, false);
      // The dashboard marks that stage failed (✗), the ones before it ok, and takes no timing from the iteration.
      const service = reduceAll(run.events).services[0];
      const stages = service?.lastEnded?.stages ?? {};
      assert.equal(stages[failure.stage as keyof typeof stages]?.status, 'failed');
      for (const before of upTo) assert.equal(stages[before as keyof typeof stages]?.status, 'ok', before);
      assert.equal(service?.cold, undefined, 'a failed iteration is not the cold sample');
      assert.deepEqual(service?.warm, []);
    });
  }

  it('carries the compiler diagnostics parsed on the error', async () => {
    const run = setup(await failures[0]!.setup());
    const outcome = await runIteration(run.request);
    assert.deepEqual(outcome.error?.diagnostics, [{ file: 'main.go', line: 3, column: 2, message: 'undefined: x' }]);
  });

  it('ends cancelled, with the running stage cancelled (not failed), when its signal aborts', async () => {
    const controller = new AbortController();
    const image = await fixedImage(APP, 'v1');
    const run = setup({
      signal: controller.signal,
      // A build that runs until the iteration is superseded.
      build: () =>
        new Promise((_resolve, reject) => {
          controller.signal.addEventListener('abort', () => reject(new TskoError('ABORTED', 'superseded by a newer save')), { once: true });
          setImmediate(() => controller.abort(new TskoError('ABORTED', 'superseded by a newer save')));
        }).then(() => image),
    });
    const outcome = await runIteration(run.request);
    assert.equal(outcome.result, 'cancelled');
    assert.equal(outcome.error, undefined, 'a cancelled iteration is no failure');
    assert.deepEqual(ends(run.events), ['trigger:ok', 'build:cancelled']);
    assert.equal(reduceAll(run.events).services[0]?.lastEnded?.stages.build?.status, 'cancelled');
  });

  it('ends unchanged without pushing or deploying when the program is the one serving', async () => {
    const image = await fixedImage(APP, 'v1');
    const first = setup({ build: image });
    const deployed = await runIteration(first.request);
    const again = setup({ build: image });
    const outcome = await runIteration({ ...again.request, serving: deployed.identity });
    assert.equal(outcome.result, 'unchanged');
    assert.deepEqual(starts(again.events), ['trigger', 'build', 'layer']);
    const other = setup({ build: await fixedImage(APP, 'v2') });
    assert.equal((await runIteration({ ...other.request, serving: deployed.identity })).result, 'deployed', 'another program deploys');
  });

  it('has no trigger stage when nothing triggered it (tsko deploy)', async () => {
    const run = setup({ build: await fixedImage(APP, 'v1') });
    const { since: _since, ...once } = run.request;
    await runIteration({ ...once, trigger: ['deploy'] });
    assert.deepEqual(starts(run.events), ['build', 'layer', 'push', 'deploy', 'ready']);
  });
});

/** A publisher that pushes only once `release` is called (or fails then, with `failWith`). */
function gatedPublisher(failWith?: Error): Publisher & { release(): void; settled: boolean } {
  const inner = fixedPublisher('registry.test/team');
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const gated = {
    settled: false,
    release: () => open(),
    async publish(...args: Parameters<Publisher['publish']>) {
      await gate;
      gated.settled = true;
      if (failWith) throw failWith;
      return inner.publish(...args);
    },
  };
  return gated;
}

/**
 * A target like the local one: it starts before the push and serves as soon as ready() is called;
 * settled() applies the push's outcome (the previous revision retired, or back on a failed push).
 */
function earlyTarget(fail?: 'deploy'): Target & { calls: string[]; pushedWith: Array<string | Error>; runnables: RunnableImage[] } {
  const calls: string[] = [];
  const pushedWith: Array<string | Error> = [];
  const runnables: RunnableImage[] = [];
  const target = {
    kind: 'local' as const,
    calls,
    pushedWith,
    runnables,
    deploy(): Promise<Rollout> {
      throw new Error('deploy() must not be called for a target that deploys before the push');
    },
    async deployBeforePush(request: Parameters<NonNullable<Target['deployBeforePush']>>[0]): Promise<Rollout> {
      calls.push('deploy');
      runnables.push(request.runnable);
      if (fail === 'deploy') throw new TskoError('DEPLOY', 'cannot start the revision');
      let settled: Promise<void> = Promise.resolve();
      return {
        async ready() {
          calls.push('ready');
          settled = request.pushed.then(
            (reference) => {
              pushedWith.push(reference);
              calls.push('retire the previous revision');
            },
            (err: Error) => {
              pushedWith.push(err);
              calls.push('switch back');
            },
          );
          return { revision: 'app-00001' };
        },
        settled: () => settled,
      };
    },
    close: async () => undefined,
  };
  return target;
}

/** Bounded wait until `done` holds (the iteration runs on its own meanwhile). */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(done(), what);
}

const order = (events: TskoEvent[]) =>
  events.filter((e) => e.type === 'stage.start' || e.type === 'stage.end').map((e) => `${e.type === 'stage.start' ? '>' : '<'}${(e as EventOf<'stage.start'>).stage}`);

/**
 * A builder like the go builder with layer files: it offers the built binary (onBinary) and packs
 * the layer only once what that returned has settled, then waits at `layerGate`.
 */
function offeringBuilder(built: BuiltImage, layerGate: Promise<void>): Builder & { offered: boolean } {
  const builder = {
    offered: false,
    resolve: () => Promise.resolve(fixedTarget(APP)),
    async build(_target: ResolvedTarget, _platform: Platform, context: BuildContext): Promise<BuiltImage> {
      await stage(context.events, 'build', () => Promise.resolve());
      return stage(context.events, 'layer', async () => {
        const runnable = runnableOf(built.image);
        const top = runnable.top as Layer;
        builder.offered = true;
        await context.onBinary?.({ buildId: built.buildId as string, runnable: { ...runnable, top: { files: [{ name: 'ko-app/app', type: 'file', mode: 0o555, source: '/nonexistent/app' }] } } });
        assert.ok(top.digest, 'the layer is packed after the offer');
        await layerGate;
        return built;
      });
    },
  };
  return builder;
}

describe('the iteration runner with a target that deploys before the push', () => {
  it('starts the revision while the push is still running and serves before it completes; the iteration ends deployed once it has', async () => {
    const publisher = gatedPublisher();
    const run = setup({ build: await fixedImage(APP, 'v1'), publisher });
    const target = earlyTarget();
    run.request.deployTo = target;
    const running = runIteration(run.request);
    await until(() => run.events.some((e) => e.type === 'stage.end' && e.stage === 'ready'), 'the ready stage ended');
    assert.deepEqual(target.calls, ['deploy', 'ready'], 'the revision started and serves');
    assert.equal(publisher.settled, false, 'before the push finished');
    assert.ok(!run.events.some((e) => e.type === 'stage.end' && e.stage === 'push'), 'the push stage is still open');
    assert.ok(!run.events.some((e) => e.type === 'iteration.end'), 'the iteration has not ended');
    publisher.release();
    const outcome = await running;
    assert.equal(outcome.result, 'deployed');
    assert.deepEqual(target.calls, ['deploy', 'ready', 'retire the previous revision'], 'the previous revision is retired once the push completed');
    assert.deepEqual(target.pushedWith, [outcome.reference], 'the target got the pushed reference');
    const stages = order(run.events);
    assert.ok(stages.indexOf('<ready') < stages.indexOf('<push'), stages.join(' '));
    // The iteration's time is save → serving, not → the end of the push.
    const readyEnd = run.events.findIndex((e) => e.type === 'stage.end' && e.stage === 'ready');
    assert.ok(readyEnd >= 0 && outcome.ms > 0);
  });

  it('starts the revision from the built binary before its layer is packed, when the builder offers it', async () => {
    const built = { ...(await fixedImage(APP, 'v1')), buildId: 'action/link-a/content/link-b' };
    let openLayer!: () => void;
    const layerGate = new Promise<void>((resolve) => (openLayer = resolve));
    const builder = offeringBuilder(built, layerGate);
    const publisher = gatedPublisher();
    const run = setup({ build: built, publisher });
    run.request.pipeline = { ...run.request.pipeline, build: (target, context) => buildForPlatforms(builder, target, [PLATFORM], context) };
    const target = earlyTarget();
    run.request.deployTo = target;
    const running = runIteration(run.request);
    await until(() => run.events.some((e) => e.type === 'stage.end' && e.stage === 'ready'), 'the revision serves while the layer is held');
    assert.ok(!run.events.some((e) => e.type === 'stage.end' && e.stage === 'layer'), 'the layer stage is still open');
    assert.deepEqual((target.runnables[0]?.top as { files: unknown[] }).files.length, 1, 'it runs the binary as a file, not the layer');
    openLayer();
    publisher.release();
    const outcome = await running;
    assert.equal(outcome.result, 'deployed');
    assert.deepEqual(target.calls, ['deploy', 'ready', 'retire the previous revision'], 'one deploy: the built image is the one started');
    assert.equal(outcome.identity, runtimeIdentity(built.image, built.buildId));

    // The same program again: nothing starts, and the iteration is unchanged.
    const again = setup({ build: built, publisher: gatedPublisher() });
    again.request.pipeline = { ...again.request.pipeline, build: (t, context) => buildForPlatforms(offeringBuilder(built, Promise.resolve()), t, [PLATFORM], context) };
    const idle = earlyTarget();
    again.request.deployTo = idle;
    assert.equal((await runIteration({ ...again.request, serving: outcome.identity })).result, 'unchanged');
    assert.deepEqual(idle.calls, [], 'no revision started for an unchanged program');
  });

  it('ends push-failed when the push fails after the revision served, and the target switches back', async () => {
    const publisher = gatedPublisher(new TskoError('REGISTRY_AUTH', 'registry.test denied the push'));
    const run = setup({ build: await fixedImage(APP, 'v1'), publisher });
    const target = earlyTarget();
    run.request.deployTo = target;
    const running = runIteration(run.request);
    await until(() => target.calls.includes('ready'), 'it serves');
    publisher.release();
    const outcome = await running;
    assert.equal(outcome.result, 'push-failed');
    assert.equal(outcome.error?.code, 'REGISTRY_AUTH');
    assert.deepEqual(target.calls, ['deploy', 'ready', 'switch back'], 'the push failure reached the target before the iteration ended');
    assert.ok(target.pushedWith[0] instanceof Error);
    assert.equal(endOf(run.events)?.result, 'push-failed');
  });

  it('releases a revision started from the binary when the build fails after the offer', async () => {
    const built = { ...(await fixedImage(APP, 'v1')), buildId: 'action/link-a/content/link-b' };
    const failing: Builder = {
      resolve: () => Promise.resolve(fixedTarget(APP)),
      async build(_target, _platform, context) {
        await stage(context.events, 'build', () => Promise.resolve());
        return stage(context.events, 'layer', async () => {
          await context.onBinary?.({ buildId: built.buildId, runnable: runnableOf(built.image) });
          throw new TskoError('INTERNAL', 'the disk filled up while the layer was written');
        });
      },
    };
    const run = setup({ build: built });
    run.request.pipeline = { ...run.request.pipeline, build: (target, context) => buildForPlatforms(failing, target, [PLATFORM], context) };
    const target = earlyTarget();
    run.request.deployTo = target;
    const outcome = await runIteration(run.request);
    assert.equal(outcome.result, 'build-failed');
    assert.deepEqual(target.calls, ['deploy', 'ready', 'switch back'], 'the revision that served was told there is no image');
  });

  it('ends deploy-failed when the revision cannot start though the push succeeded', async () => {
    const publisher = gatedPublisher();
    publisher.release();
    const run = setup({ build: await fixedImage(APP, 'v1'), publisher });
    run.request.deployTo = earlyTarget('deploy');
    const outcome = await runIteration(run.request);
    assert.equal(outcome.result, 'deploy-failed');
    assert.equal(outcome.error?.message, 'cannot start the revision');
    assert.ok(outcome.reference, 'the push went through');
    assert.ok(ends(run.events).includes('push:ok') && ends(run.events).includes('deploy:failed'));
  });
});
