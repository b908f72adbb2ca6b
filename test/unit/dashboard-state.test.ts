// The dashboard's model without a terminal: reduce() over recorded `tsko dev --json` runs
// (test/fixtures/events) and over small hand-made sequences, the cold/warm statistics, the
// sentences describe.ts derives, and the layout planner's promises (fits the rows and columns).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TskoEvent } from '../../src/events.js';
import { diagnostics, errorLines, resultLine } from '../../ui/dashboard/describe.js';
import { bar, barScale } from '../../ui/dashboard/components/history.js';
import { clip, displayPath, seconds, shortMs } from '../../ui/dashboard/format.js';
import { planLayout, tableColumns } from '../../ui/dashboard/layout.js';
import { currentIteration, initialState, LIMITS, reduce, reduceAll, type DashboardState } from '../../ui/dashboard/state.js';
import { coldWarm, median, percentile } from '../../ui/dashboard/stats.js';
import { fixture } from '../support/dashboard-fixtures.js';

const session = fixture('hello-session.jsonl');
const failures = fixture('hello-failures.jsonl');

/** The events up to and including the first that matches. */
function until(events: TskoEvent[], match: (e: TskoEvent) => boolean): TskoEvent[] {
  const index = events.findIndex(match);
  assert.ok(index >= 0, 'the fixture has the event');
  return events.slice(0, index + 1);
}

const endOf = (n: number) => (e: TskoEvent) => e.type === 'iteration.end' && e.iteration === n;

function only(state: DashboardState) {
  assert.equal(state.services.length, 1);
  return state.services[0]!;
}

/** Deep-freezes a value so a reducer that mutates its input throws in strict mode. */
function freeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) freeze(v);
  }
  return value;
}

describe('dashboard reducer on a recorded session', () => {
  const state = reduceAll(session);
  const hello = only(state);

  it('keeps every iteration in the history with its result, and the registry', () => {
    assert.deepEqual(
      hello.history.map((h) => `${h.iteration}:${h.result}`),
      ['1:deployed', '2:deployed', '3:deployed', '4:deployed', '5:deployed', '6:deployed', '7:build-failed', '8:unchanged', '9:deployed'],
    );
    assert.equal(hello.importPath, 'example.com/hello');
    assert.match(state.registry?.address ?? '', /^127\.0\.0\.1:\d+$/);
    assert.equal(hello.running.length, 0);
  });

  it('takes the first deployed iteration as cold and only later deployed ones as warm', () => {
    assert.equal(hello.cold?.iteration, 1);
    assert.deepEqual(
      hello.warm.map((w) => w.iteration),
      [2, 3, 4, 5, 6, 9],
    );
    assert.equal(hello.serving?.revision, 'hello-00007');
    assert.match(hello.serving?.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('times deploy and ready as two stages that follow each other, each with its own stage.end', () => {
    const ofFirst = (type: 'stage.start' | 'stage.end', stage: string) =>
      session.filter((e) => e.type === type && e.iteration === 1 && e.stage === stage) as Array<Extract<TskoEvent, { type: 'stage.start' | 'stage.end' }>>;
    const deployEnds = ofFirst('stage.end', 'deploy');
    const readyStarts = ofFirst('stage.start', 'ready');
    assert.equal(deployEnds.length, 1, 'one deploy stage per iteration');
    assert.equal(readyStarts.length, 1, 'one ready stage per iteration');
    assert.ok(readyStarts[0]!.time >= deployEnds[0]!.time, 'ready starts once deploy has ended');
    assert.equal(hello.cold?.stages.deploy, (deployEnds[0] as Extract<TskoEvent, { type: 'stage.end' }>).ms);
    const ready = ofFirst('stage.end', 'ready')[0] as Extract<TskoEvent, { type: 'stage.end' }>;
    assert.equal(hello.cold?.stages.ready, ready.ms);
    // Stages that do not overlap add up to no more than save → serving.
    for (const entry of [hello.cold!, ...hello.warm]) {
      const sum = Object.values(entry.stages).reduce((a, b) => a + b, 0);
      assert.ok(sum <= entry.ms + 1, `iteration ${entry.iteration}: stages ${sum} ms within ${entry.ms} ms`);
    }
  });

  it('says what the last iteration did', () => {
    const line = resultLine(hello);
    assert.equal(line?.symbol, '✓');
    assert.match(line?.parts[0] ?? '', /^Updated in \d+\.\d\d s$/);
    assert.ok(line?.parts.includes('2 blobs skipped'));
    assert.ok(line?.parts.includes('rev hello-00007'));
    assert.ok(line?.parts.some((p) => /^\d+\.\d MB pushed$/.test(p)));
  });

  it('does not mutate the state it is given', () => {
    const frozen = freeze(reduceAll(session.slice(0, 60)));
    assert.doesNotThrow(() => reduceAll(session.slice(60), frozen));
  });
});

describe('dashboard reducer: errors, cancellation and what still serves', () => {
  it('lists every compiler diagnostic with file:line:col and names the revision still serving', () => {
    const state = reduceAll(until(session, endOf(7)));
    const hello = only(state);
    assert.equal(hello.lastEnded?.end?.result, 'build-failed');
    const found = diagnostics(hello.lastEnded?.end?.error);
    assert.deepEqual(
      found.map((d) => `${d.file}:${d.line}:${d.column}`),
      ['main.go:16:2', 'main.go:17:6', 'main.go:17:14'],
    );
    const lines = errorLines(hello, hello.lastEnded!.end!.endedAt + 5000);
    assert.deepEqual(
      lines.slice(0, 3).map((l) => l.lead),
      ['main.go:16:2', 'main.go:17:6', 'main.go:17:14'],
    );
    assert.match(lines.at(-1)?.text ?? '', /^still serving hello-00006 \(deployed 5 s ago\) · http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(resultLine(hello)?.parts[1], '3 compiler errors');
  });

  it('stops showing a build error once a later iteration deploys', () => {
    const hello = only(reduceAll(session));
    assert.deepEqual(errorLines(hello, Date.now()), []);
  });

  it('shows a deploy failure with its one line, hint and the revision\'s last words', () => {
    const hello = only(reduceAll(until(failures, endOf(2))));
    assert.equal(hello.lastEnded?.end?.result, 'deploy-failed');
    const lines = errorLines(hello, hello.lastEnded!.end!.endedAt);
    assert.match(lines[0]?.text ?? '', /revision hello-00002 exited with code 1 before listening/);
    assert.equal(lines[1]?.lead, 'hint:');
    assert.match(lines[1]?.text ?? '', /hello-00001 keeps serving/);
    assert.ok(lines.some((l) => l.lead === '│' && /refusing to start/.test(l.text)));
    assert.match(lines.at(-1)?.text ?? '', /^still serving hello-00001 /);
    assert.equal(hello.serving?.revision, 'hello-00001');
  });

  it('follows a superseded iteration that ends after its successor started', () => {
    const mid = only(reduceAll(until(failures, endOf(3))));
    assert.equal(currentIteration(mid)?.iteration, 4, 'the newest started iteration is the current one');
    assert.equal(mid.lastEnded?.end?.result, 'cancelled');
    const all = only(reduceAll(failures));
    assert.deepEqual(
      all.history.map((h) => `${h.iteration}:${h.result}`),
      ['1:deployed', '2:deploy-failed', '3:cancelled', '4:deployed'],
    );
    assert.deepEqual(all.warm.map((w) => w.iteration), [4]);
    assert.equal(resultLine(all)?.symbol, '✓');
  });

  it('marks a stage cut short by the end of its iteration as cancelled or failed, with the time it ran', () => {
    const t = 1_000_000;
    const cutShort = (result: 'cancelled' | 'deploy-failed') =>
      only(
        reduceAll([
          { type: 'iteration.start', service: 's', iteration: 1, trigger: ['a.go'], time: t },
          { type: 'stage.start', service: 's', iteration: 1, stage: 'build', time: t + 10 },
          { type: 'iteration.end', service: 's', iteration: 1, result, ms: 60, time: t + 60 },
        ]),
      ).lastEnded?.stages.build;
    assert.deepEqual(cutShort('cancelled'), { status: 'cancelled', startedAt: t + 10, ms: 50 });
    assert.deepEqual(cutShort('deploy-failed'), { status: 'failed', startedAt: t + 10, ms: 50 });
  });

  it('takes each stage\'s outcome from its stage.end: failed, cancelled or ok, and only ok stages count as timings', () => {
    const failedReady = only(reduceAll(until(failures, endOf(2))));
    assert.equal(failedReady.lastEnded?.stages.ready?.status, 'failed', 'the revision that exited failed the ready stage');
    assert.equal(failedReady.lastEnded?.stages.deploy?.status, 'ok');
    assert.equal(failedReady.history.at(-1)?.stages.ready, undefined, 'a failed stage is no timing sample');
    const cancelled = only(reduceAll(until(failures, endOf(3))));
    assert.equal(cancelled.lastEnded?.iteration, 3);
    assert.equal(cancelled.lastEnded?.end?.result, 'cancelled');
    assert.equal(cancelled.lastEnded?.stages.build?.status, 'cancelled', 'a superseded build is cancelled, not failed');
    const broken = only(reduceAll(until(session, endOf(7))));
    assert.equal(broken.lastEnded?.stages.build?.status, 'failed', 'a compile error fails the build stage');
    assert.equal(broken.lastEnded?.stages.push, undefined, 'nothing after it ran');
  });
});

describe('dashboard reducer: pause, clear, logs, limits', () => {
  it('tracks paused watching and the saves queued meanwhile', () => {
    let state = reduce(initialState(), { type: 'watch', paused: true, time: 1 });
    assert.equal(state.paused, true);
    state = reduce(state, { type: 'watch', service: 'hello', paused: true, queued: ['/x/main.go'], time: 2 });
    assert.deepEqual(only(state).queued, ['/x/main.go']);
    state = reduce(state, { type: 'watch', paused: false, time: 3 });
    assert.equal(state.paused, false);
    assert.deepEqual(only(state).queued, []);
  });

  it('clears the history and warm samples but keeps the cold run and what serves', () => {
    const before = only(reduceAll(session));
    const after = only(reduce(reduceAll(session), { type: 'dashboard.clear-history' }));
    assert.deepEqual(after.history, []);
    assert.deepEqual(after.warm, []);
    assert.deepEqual(after.cold, before.cold);
    assert.deepEqual(after.serving, before.serving);
  });

  it('keeps revision logs, and rollout messages from remote targets, in one bounded tail', () => {
    let state = reduceAll(session);
    assert.ok(only(state).logs.some((l) => l.revision === 'hello-00007' && /listening/.test(l.line)));
    state = reduce(state, { type: 'rollout', service: 'hello', target: 'kubernetes', message: 'deployment "hello" successfully rolled out', time: 5 });
    assert.deepEqual(only(state).logs.at(-1), { time: 5, stream: 'rollout', line: 'deployment "hello" successfully rolled out' });
    for (let i = 0; i < LIMITS.logs * 2; i++) state = reduce(state, { type: 'revision.log', service: 'hello', revision: 'r', stream: 'stdout', line: String(i), time: 10 + i });
    assert.equal(only(state).logs.length, LIMITS.logs);
    assert.equal(only(state).logs.at(-1)?.line, String(LIMITS.logs * 2 - 1));
  });

  it('bounds the history and warm samples however long the session runs', () => {
    const events: TskoEvent[] = [];
    for (let i = 1; i <= LIMITS.warm + 100; i++) {
      events.push({ type: 'iteration.start', service: 's', iteration: i, trigger: ['a.go'], time: i * 10 });
      events.push({ type: 'iteration.end', service: 's', iteration: i, result: 'deployed', ms: i, revision: `s-${i}`, time: i * 10 + 5 });
    }
    const s = only(reduceAll(events));
    assert.equal(s.history.length, LIMITS.history);
    assert.equal(s.warm.length, LIMITS.warm);
    assert.equal(s.cold?.iteration, 1);
    assert.equal(s.history.at(-1)?.iteration, LIMITS.warm + 100);
  });

  it('turns warn and info logs and errors into notices, and drops debug logs', () => {
    let state = reduce(initialState(), { type: 'log', level: 'debug', message: 'GET /v2/', time: 1 });
    assert.deepEqual(state.notices, []);
    state = reduce(state, { type: 'log', level: 'warn', message: 'watcher: EMFILE', time: 2 });
    state = reduce(state, { type: 'error', error: { code: 'CONFIG', message: 'bad config', hint: 'fix it' }, time: 3 });
    assert.deepEqual(
      state.notices.map((n) => `${n.level}:${n.message}`),
      ['warn:watcher: EMFILE', 'error:bad config'],
    );
  });
});

describe('cold vs warm statistics', () => {
  it('computes the median and a nearest-rank p90', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    assert.equal(median([]), undefined);
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9);
    assert.equal(percentile([5], 90), 5);
    assert.equal(percentile([10, 1], 90), 10);
  });

  it('compares the cold run with the warm median per stage and in total', () => {
    const entry = (iteration: number, build: number, total: number) => ({
      iteration,
      result: 'deployed' as const,
      ms: total,
      endedAt: iteration,
      stages: { build, push: 10 },
      trigger: [],
    });
    const stats = coldWarm({ cold: entry(1, 12_000, 12_500), coldness: 'cold', warm: [entry(2, 400, 800), entry(3, 600, 1000), entry(4, 500, 900)] });
    assert.equal(stats.build.cold, 12_000);
    assert.equal(stats.build.p50, 500);
    assert.equal(stats.build.p90, 600);
    assert.equal(stats.build.speedup, 24);
    assert.equal(stats.total.p50, 900);
    assert.equal(stats.ready.cold, undefined);
    assert.equal(stats.ready.samples, 0);
  });
});

describe('dashboard formatting and layout', () => {
  it('writes times, paths and cut text compactly', () => {
    assert.equal(shortMs(9.6), '10ms');
    assert.equal(shortMs(1234), '1.2s');
    assert.equal(shortMs(12_345), '12s');
    assert.equal(shortMs(125_000), '2m05s');
    assert.equal(seconds(620), '0.62 s');
    assert.equal(displayPath('/w/app/cmd/main.go', '/w/app'), 'cmd/main.go');
    assert.equal(displayPath('/tmp/x/hello/main.go', '/elsewhere'), '…/hello/main.go');
    assert.equal(clip('abcdef', 4), 'abc…');
  });

  it('scales history bars to the warm iterations and marks longer ones', () => {
    assert.equal(bar(500, 1000, 10), '█████');
    assert.equal(bar(5000, 1000, 10), '█████████▸');
    assert.equal(barScale([{ iteration: 1, ms: 9000 }, { iteration: 2, ms: 800 }] as never, 1), 800);
  });

  it('keeps total and build when columns are short, in pipeline order', () => {
    assert.deepEqual(tableColumns(200, 11, 9), ['trigger', 'build', 'layer', 'push', 'deploy', 'ready', 'total']);
    assert.deepEqual(tableColumns(40, 9, 8), ['build', 'push', 'total']);
    assert.deepEqual(tableColumns(20, 9, 8), ['total']);
  });

  it('plans a frame no taller than the terminal, giving up detail in order', () => {
    const services = [{ errorLines: 4, historyLength: 30 }];
    const roomy = planLayout({ columns: 100, rows: 50, services, showLogs: true, logLines: 40, notice: true });
    assert.ok(roomy.height <= 50);
    assert.equal(roomy.tableRows.length, 4);
    assert.ok(roomy.historyRows > 0 && roomy.logRows > 0);
    for (const rows of [24, 16, 12, 8]) {
      const plan = planLayout({ columns: 80, rows, services, showLogs: true, logLines: 40, notice: true });
      assert.ok(plan.height <= rows, `height ${plan.height} fits ${rows} rows`);
    }
    const two = planLayout({ columns: 80, rows: 24, services: [services[0]!, services[0]!], showLogs: false, logLines: 0, notice: false });
    assert.ok(two.height <= 24);
    assert.equal(planLayout({ columns: 79, rows: 24, services, showLogs: false, logLines: 0, notice: false }).compact, true);
  });
});
