// When the dev loop starts an iteration, with the clock mocked (timing is the subject here): saves
// within the debounce are one build, a storm of events waits for a longer quiet spell, a save
// during an iteration cancels it and the newest save is built, and hold() (a config reload) stops
// the running iteration and keeps saves until release().
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { Target } from '../../src/deploy/target.js';
import { ServiceLoop } from '../../src/dev/service-loop.js';
import { createEventBus, type EventOf, type TskoEvent } from '../../src/events.js';
import { fixedBuilder, fixedImage, fixedPublisher, fixedTarget } from '../../src/publish/fixed.js';
import { buildForPlatforms } from '../../src/publish/platforms.js';
import type { Pipeline } from '../../src/publish/pipeline.js';

const APP = 'example.com/app';
const DEBOUNCE_MS = 10;

interface Gate {
  /** Builds wait here until opened (a build that takes as long as the test says). */
  opened: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function makeLoop() {
  const events = createEventBus();
  const seen: TskoEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const image = await fixedImage(APP, 'v1');
  let current = gate();
  current.open();
  const builder = fixedBuilder(
    new Map([
      [
        APP,
        async () => {
          await current.opened;
          return image;
        },
      ],
    ]),
  );
  const pipeline = { build: (target, context) => buildForPlatforms(builder, target, [{ os: 'linux', architecture: 'amd64' }], context), publisher: fixedPublisher('registry.test'), invalidate: () => undefined } as Pick<Pipeline, 'build' | 'publisher' | 'invalidate'> as Pipeline;
  const target: Target = { kind: 'local', deploy: async () => ({ ready: async () => ({ revision: 'app-1' }) }), close: async () => undefined };
  const loop = new ServiceLoop({ name: 'app', resolved: fixedTarget(APP), pipeline: () => pipeline, target: () => target, events, debounceMs: DEBOUNCE_MS, now: () => Date.now() });
  return {
    loop,
    seen,
    builder,
    /** The next builds wait until the returned gate opens. */
    holdBuilds: () => (current = gate()),
  };
}

const startsOf = (seen: TskoEvent[]) => seen.filter((e): e is EventOf<'iteration.start'> => e.type === 'iteration.start');
const endsOf = (seen: TskoEvent[]) => seen.filter((e): e is EventOf<'iteration.end'> => e.type === 'iteration.end');

/** Lets the promises the mocked timers released run (the iteration is async all the way). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('ServiceLoop scheduling', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
  afterEach(() => mock.timers.reset());

  it('builds a burst of saves within the debounce once, with every file as its trigger', async () => {
    const { loop, seen } = await makeLoop();
    loop.changed(['/src/a.go'], Date.now());
    mock.timers.tick(DEBOUNCE_MS - 1);
    loop.changed(['/src/b.go'], Date.now());
    mock.timers.tick(DEBOUNCE_MS - 1);
    assert.equal(startsOf(seen).length, 0, 'still within the debounce of the last save');
    mock.timers.tick(1);
    await settle();
    assert.deepEqual(startsOf(seen).map((e) => e.trigger), [['/src/a.go', '/src/b.go']]);
    assert.equal(endsOf(seen)[0]?.result, 'deployed');
  });

  it('waits for a longer quiet spell in a storm of events (a checkout), then builds once', async () => {
    const { loop, seen } = await makeLoop();
    // Events a little faster than the debounce, for longer than it: many files in a row.
    for (let i = 0; i < 6; i++) {
      loop.changed([`/src/f${i}.go`], Date.now());
      mock.timers.tick(DEBOUNCE_MS - 2);
    }
    mock.timers.tick(100);
    assert.equal(startsOf(seen).length, 0, 'a storm waits longer than one save');
    mock.timers.tick(50);
    await settle();
    assert.equal(startsOf(seen).length, 1);
    assert.equal(startsOf(seen)[0]?.trigger.length, 6);
  });

  it('cancels the running iteration on a newer save and builds the newest one', async () => {
    const { loop, seen, holdBuilds } = await makeLoop();
    const slow = holdBuilds();
    loop.changed(['/src/a.go'], Date.now());
    mock.timers.tick(DEBOUNCE_MS);
    await settle();
    assert.equal(startsOf(seen).length, 1, 'the first iteration is building');
    // A save this soon after a build started may be the rest of a storm: it waits the longer quiet spell.
    loop.changed(['/src/b.go'], Date.now());
    mock.timers.tick(150);
    await settle();
    slow.open();
    await settle();
    await loop.idle();
    assert.deepEqual(endsOf(seen).map((e) => `${e.iteration}:${e.result}`), ['1:cancelled', '2:deployed']);
    const cancelledBuild = seen.find((e) => e.type === 'stage.end' && e.iteration === 1 && e.stage === 'build');
    assert.ok(cancelledBuild?.type === 'stage.end' && !cancelledBuild.ok && cancelledBuild.cancelled, 'the superseded build is cancelled');
    assert.deepEqual(startsOf(seen)[1]?.trigger, ['/src/b.go']);
  });

  it('hold() stops the running iteration (cancelled) and keeps saves until release()', async () => {
    const { loop, seen, holdBuilds } = await makeLoop();
    const slow = holdBuilds();
    loop.changed(['/src/a.go'], Date.now());
    mock.timers.tick(DEBOUNCE_MS);
    await settle();
    const held = loop.hold('the config changed');
    await held;
    assert.deepEqual(endsOf(seen).map((e) => `${e.iteration}:${e.result}`), ['1:cancelled'], 'hold() returns once the iteration has ended');
    loop.changed(['/src/b.go'], Date.now());
    mock.timers.tick(1000);
    await settle();
    assert.equal(startsOf(seen).length, 1, 'nothing starts while held');
    slow.open();
    loop.release();
    mock.timers.tick(DEBOUNCE_MS);
    await settle();
    await loop.idle();
    assert.deepEqual(endsOf(seen).map((e) => `${e.iteration}:${e.result}`), ['1:cancelled', '2:deployed']);
    assert.deepEqual(startsOf(seen)[1]?.trigger, ['/src/b.go'], 'the save kept while held is built on release');
  });

  it('close() cancels the running iteration and starts nothing after it', async () => {
    const { loop, seen, holdBuilds } = await makeLoop();
    holdBuilds();
    loop.changed(['/src/a.go'], Date.now());
    mock.timers.tick(DEBOUNCE_MS);
    await settle();
    await loop.close();
    loop.changed(['/src/b.go'], Date.now());
    mock.timers.tick(1000);
    await settle();
    assert.deepEqual(endsOf(seen).map((e) => e.result), ['cancelled']);
    assert.equal(startsOf(seen).length, 1);
  });
});
