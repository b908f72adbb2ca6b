// The dashboard's `p` key at the unit level: a paused ServiceLoop queues saves instead of building
// them, says so with `watch` events, builds them all as one change on resume, and still builds on
// `r`. The pipeline is a fake whose build fails at once, so each iteration is a few events long.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createEventBus, type EventOf, type TskoEvent } from '../../src/events.js';
import { TskoError } from '../../src/errors.js';
import { ServiceLoop } from '../../src/dev/service-loop.js';
import type { Pipeline } from '../../src/publish/pipeline.js';
import type { ResolvedTarget } from '../../src/publish/builder.js';
import type { Target } from '../../src/deploy/target.js';

function makeLoop() {
  const events = createEventBus();
  const seen: TskoEvent[] = [];
  events.subscribe((event) => seen.push(event));
  let builds = 0;
  const pipeline = {
    invalidate: () => undefined,
    build: async () => {
      builds++;
      throw new TskoError('GO_BUILD', 'fake build failure');
    },
  } as unknown as Pipeline;
  const target = { kind: 'local', deploy: async () => ({}), close: async () => undefined } as unknown as Target;
  const loop = new ServiceLoop({
    name: 'svc',
    resolved: { pkg: { importPath: 'example.com/svc', dir: '/nonexistent' }, cwd: '/nonexistent', build: undefined } as unknown as ResolvedTarget,
    pipeline: () => pipeline,
    target: () => target,
    events,
    debounceMs: 5,
  });
  return { loop, seen, builds: () => builds };
}

const starts = (seen: TskoEvent[]) => seen.filter((e): e is EventOf<'iteration.start'> => e.type === 'iteration.start');

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('ServiceLoop pause', () => {
  it('queues saves while paused, reports them, and builds them as one change on resume', async () => {
    const { loop, seen, builds } = makeLoop();
    loop.setPaused(true);
    assert.equal(loop.isPaused, true);
    loop.changed(['/src/a.go'], performance.now());
    loop.changed(['/src/b.go'], performance.now());
    // Ten debounce periods: long enough that an unpaused loop would certainly have started.
    await sleep(50);
    assert.equal(starts(seen).length, 0, 'nothing built while paused');
    assert.equal(builds(), 0);
    const watch = seen.filter((e): e is EventOf<'watch'> => e.type === 'watch');
    assert.deepEqual(watch.at(-1)?.queued, ['/src/a.go', '/src/b.go']);
    assert.equal(watch.at(-1)?.service, 'svc');

    loop.setPaused(false);
    await until(() => seen.some((e) => e.type === 'iteration.end'), 'the resumed iteration');
    assert.equal(starts(seen).length, 1);
    assert.deepEqual(starts(seen)[0]?.trigger, ['/src/a.go', '/src/b.go']);
    await loop.close();
  });

  it('resuming with nothing queued starts nothing', async () => {
    const { loop, seen } = makeLoop();
    loop.setPaused(true);
    loop.setPaused(false);
    await sleep(40);
    assert.equal(starts(seen).length, 0);
    await loop.close();
  });

  it('`r` (rebuild) builds even while paused, and the queued saves wait for resume', async () => {
    const { loop, seen } = makeLoop();
    loop.setPaused(true);
    loop.rebuild('r');
    await until(() => seen.some((e) => e.type === 'iteration.end'), 'the rebuild');
    assert.deepEqual(starts(seen)[0]?.trigger, ['r']);
    loop.changed(['/src/c.go'], performance.now());
    await sleep(50);
    assert.equal(starts(seen).length, 1, 'the save waits while paused');
    loop.setPaused(false);
    await until(() => starts(seen).length === 2, 'the queued save after resume');
    assert.deepEqual(starts(seen)[1]?.trigger, ['/src/c.go']);
    await loop.close();
  });
});
