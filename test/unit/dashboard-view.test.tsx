// The dashboard's frames and keys with ink-testing-library: recorded `tsko dev --json` runs are
// replayed into the store, the App renders at a fixed size, and the tests read lastFrame() —
// the cold and warm rows, the running stage's spinner and elapsed time, compiler errors, a narrow
// terminal — and press keys on the fake stdin to see the controls called.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { render, cleanup } from 'ink-testing-library';
import type { TskoEvent } from '../../src/events.js';
import { App, type DashboardControls } from '../../ui/dashboard/app.js';
import { DashboardView } from '../../ui/dashboard/components/dashboard.js';
import { reduceAll } from '../../ui/dashboard/state.js';
import { createDashboardStore, type EventSource } from '../../ui/dashboard/store.js';
import { fixture, withColdFirstBuild } from '../support/dashboard-fixtures.js';

after(() => cleanup());

// Told cold (as a first build on an empty Go cache says), so the speed-up row has a baseline.
const session = withColdFirstBuild(fixture('hello-session.jsonl'));
const failures = withColdFirstBuild(fixture('hello-failures.jsonl'));

/** A bus stand-in the test emits on. */
function fakeBus(): EventSource & { emit(event: TskoEvent): void } {
  const listeners = new Set<(event: TskoEvent) => void>();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(event) {
      for (const l of listeners) l(event);
    },
  };
}

interface Calls {
  rebuild: number;
  paused: boolean[];
  opened: string[];
  quit: string[];
}

function fakeControls(): { controls: DashboardControls; calls: Calls } {
  const calls: Calls = { rebuild: 0, paused: [], opened: [], quit: [] };
  return {
    calls,
    controls: {
      rebuild: () => void calls.rebuild++,
      setPaused: (paused) => void calls.paused.push(paused),
      openUrl: async (url) => {
        calls.opened.push(url);
        return `open ${url} in a browser (no xdg-open here)`;
      },
      quit: (how) => void calls.quit.push(how),
    },
  };
}

/** Waits (bounded) until the frame satisfies `check`; returns it. */
async function frameWhere(lastFrame: () => string | undefined, check: (frame: string) => boolean, what: string): Promise<string> {
  for (let i = 0; i < 150; i++) {
    const frame = lastFrame() ?? '';
    if (check(frame)) return frame;
    await sleep(20);
  }
  assert.fail(`no frame with ${what}; last frame:\n${lastFrame()}`);
}

function mountApp(events: TskoEvent[], size = { columns: 100, rows: 30 }) {
  const bus = fakeBus();
  const store = createDashboardStore(bus, { intervalMs: 10, idleIntervalMs: 50 });
  for (const event of events) bus.emit(event);
  const { controls, calls } = fakeControls();
  const app = render(<App store={store} controls={controls} size={size} color={false} cwd="/nowhere" />);
  return { ...app, bus, store, calls };
}

function assertFits(frame: string, columns: number, rows: number) {
  const lines = frame.split('\n');
  assert.ok(lines.length <= rows, `${lines.length} lines fit ${rows} rows:\n${frame}`);
  for (const line of lines) assert.ok([...line].length <= columns, `"${line}" (${[...line].length}) fits ${columns} columns`);
}

describe('dashboard frames from a recorded session', () => {
  it('shows the current iteration, the cold and warm rows, the speed-up, the result and the history', async () => {
    const { lastFrame, unmount } = mountApp(session);
    const frame = await frameWhere(lastFrame, (f) => f.includes('Updated in'), 'the result line');
    assert.match(frame, /^tsko dev · 1 service · registry 127\.0\.0\.1:\d+ · watching/);
    assert.match(frame, /✓ hello {2}example\.com\/hello {2}http:\/\/127\.0\.0\.1:\d+/);
    assert.match(frame, /6 warm +trigger +build +layer +push +deploy +ready +total/);
    assert.match(frame, /#9 +✓ \d+ms +✓ [\d.]+m?s +✓ \d+ms +✓ \d+ms +✓ \d+ms +✓ \d+ms +✓ [\d.]+m?s/);
    assert.match(frame, /cold #1 +\d+ms +\d+ms +\d+ms +\d+ms +\d+ms +\d+ms +\d+ms/);
    assert.match(frame, /warm p50 +\d+ms/);
    assert.match(frame, /warm p90 +\d+ms/);
    assert.match(frame, /speed-up +[\d.]+× +[\d.]+×/);
    assert.match(frame, /✓ Updated in \d\.\d\d s · 8\.0 MB pushed · 2 blobs skipped · rev hello-00007 · http:\/\/127\.0\.0\.1:\d+/);
    assert.match(frame, /changed …\/hello\/main\.go/);
    assert.match(frame, /history · 9 iterations/);
    assert.match(frame, /#1 +[█▏▎▍▌▋▊▉▸]+.* ✓ deployed +hello-00001 \(cold(: empty Go cache(, registry had 2 of 2 blobs)?)?\)/);
    assert.match(frame, /#7 +[█▏▎▍▌▋▊▉▸]+.* ✗ build failed/);
    assert.match(frame, /#8 +[█▏▎▍▌▋▊▉▸]+.* = unchanged/);
    assert.match(frame, /r rebuild · p pause · o open · l logs · e error · c clear · \? help · q quit/);
    assertFits(frame, 100, 30);
    unmount();
  });

  it('shows a spinner and the live elapsed time on the running stage, finals on the finished ones', () => {
    const upTo = session.findIndex((e) => e.type === 'stage.start' && e.stage === 'build' && e.iteration === 9);
    const events = session.slice(0, upTo + 1);
    const buildStart = events.at(-1)!.time;
    const state = reduceAll(events);
    const { lastFrame, unmount } = render(<DashboardView state={state} now={buildStart + 1234} frame={0} columns={100} rows={30} color={false} />);
    const frame = lastFrame() ?? '';
    assert.match(frame, /^⠋ hello/m, 'the title spins');
    assert.match(frame, /#9 +✓ 9ms +⠋ 1\.2s +· +· +· +· +⠋ 1\.2s/);
    // The previous result stays under the table while the next one builds.
    assert.match(frame, /= No change in 0\.73 s · same program as hello-00006/);
    assert.match(frame, /building …\/hello\/main\.go/);
    unmount();
  });

  it('shows compiler errors with file:line and the revision still serving', () => {
    const upTo = session.findIndex((e) => e.type === 'iteration.end' && e.result === 'build-failed');
    const state = reduceAll(session.slice(0, upTo + 1));
    const end = session[upTo]!.time;
    const { lastFrame, unmount } = render(<DashboardView state={state} now={end + 3000} frame={0} columns={100} rows={30} color={false} />);
    const frame = lastFrame() ?? '';
    assert.match(frame, /✗ Build failed after 0\.18 s · 3 compiler errors/);
    assert.match(frame, /main\.go:16:2 undefined: undefinedCall/);
    assert.match(frame, /main\.go:17:6 declared and not used: x/);
    assert.match(frame, /still serving hello-00006 \(deployed \d+ s ago\) · http:\/\/127\.0\.0\.1:\d+/);
    assert.match(frame, /#7 +✓ 10ms +✗ 171ms +– +– +– +– +✗ 183ms/, 'the failed build is ✗ and the stages after it are skipped');
    unmount();
  });

  it('shows a deploy failure with its hint, and a cancelled iteration in the history', () => {
    const upTo = failures.findIndex((e) => e.type === 'iteration.end' && e.result === 'deploy-failed');
    const state = reduceAll(failures.slice(0, upTo + 1));
    const { lastFrame, unmount } = render(<DashboardView state={state} now={failures[upTo]!.time} frame={0} columns={100} rows={30} color={false} />);
    const frame = lastFrame() ?? '';
    assert.match(frame, /✗ Deploy failed after 0\.75 s/);
    assert.match(frame, /#2 +✓ 25ms +✓ 601ms +✓ 21ms +✓ 74ms +✓ 16ms +✗ 12ms +✗ 751ms/, 'the revision was started (deploy ✓) but never got ready (ready ✗)');
    assert.match(frame, /revision hello-00002 exited with code 1 before listening on PORT \d+/);
    assert.match(frame, /hint: a service must keep running .* hello-00001 keeps serving/);
    assert.match(frame, /still serving hello-00001/);
    assert.match(frame, /warm +p50, p90 and speed-up after the next deploy/);
    unmount();
    const all = render(<DashboardView state={reduceAll(failures)} now={failures.at(-1)!.time} frame={0} columns={100} rows={30} color={false} />);
    assert.match(all.lastFrame() ?? '', /#3 +[█▏▎▍▌▋▊▉▸]+ +0\.22 s {2}↻ cancelled/);
    all.unmount();
  });
});

describe('dashboard in small terminals', () => {
  const state = reduceAll(session);
  const now = session.at(-1)!.time;

  for (const [columns, rows] of [
    [80, 24],
    [60, 20],
    [40, 16],
    [100, 10],
  ] as const) {
    it(`fits ${columns}×${rows} without wrapping a line`, () => {
      const { lastFrame, unmount } = render(<DashboardView state={state} now={now} frame={0} columns={columns} rows={rows} showLogs color={false} fill />);
      const frame = lastFrame() ?? '';
      assertFits(frame, columns, rows);
      assert.match(frame, /^tsko dev/);
      assert.match(frame, /#9 /, 'the current iteration row survives');
      assert.match(frame, /Updated in/, 'the result line survives');
      assert.match(frame.split('\n').at(-1) ?? '', columns < 80 ? /^r p o l e c \? q/ : /^r rebuild · p pause/, 'the key line is the last row');
      unmount();
    });
  }

  it('fits two services in 80×24, each with its table and result', () => {
    const twice = session.flatMap((e) => (e.service ? [e, { ...e, service: 'api', time: e.time + 1 }] : [e]));
    const { lastFrame, unmount } = render(<DashboardView state={reduceAll(twice)} now={now} frame={0} columns={80} rows={24} color={false} fill />);
    const frame = lastFrame() ?? '';
    assertFits(frame, 80, 24);
    assert.match(frame, /^✓ hello /m);
    assert.match(frame, /^✓ api /m);
    assert.equal(frame.match(/Updated in/g)?.length, 2);
    assert.equal(frame.match(/cold #1/g)?.length, 2);
    unmount();
  });

  it('uses the compact layout under 80 columns: fewer stage columns, short labels, truncated lines', () => {
    const { lastFrame, unmount } = render(<DashboardView state={state} now={now} frame={0} columns={50} rows={24} color={false} />);
    const frame = lastFrame() ?? '';
    assert.match(frame, /n=6 +build +push +deploy +total/);
    assert.doesNotMatch(frame, /trigger/);
    assert.match(frame, /p50 +\d+ms/);
    assert.match(frame, /^ {2}✓ Updated in \d\.\d\d s · 8\.0 MB pushed · [^\n]*…$/m, 'the result line is cut, not wrapped');
    unmount();
  });
});

describe('dashboard keys', () => {
  it('r rebuilds, p pauses and resumes, q and Ctrl-C quit', async () => {
    const { stdin, lastFrame, calls, unmount } = mountApp(session);
    await frameWhere(lastFrame, (f) => f.includes('Updated in'), 'the first frame');
    stdin.write('r');
    await frameWhere(lastFrame, (f) => f.includes('rebuilding…'), 'the rebuild message');
    assert.equal(calls.rebuild, 1);
    stdin.write('p');
    stdin.write('p');
    await frameWhere(lastFrame, (f) => f.includes('watching resumed'), 'the resume message');
    assert.deepEqual(calls.paused, [true, false], 'two presses before any watch event still alternate');
    stdin.write('q');
    stdin.write('\x03');
    await frameWhere(lastFrame, () => calls.quit.length === 2, 'both quits');
    assert.deepEqual(calls.quit, ['key', 'ctrl-c']);
    unmount();
  });

  it('p shows PAUSED and the queued saves once the session says so', async () => {
    const { stdin, lastFrame, bus, calls, unmount } = mountApp(session);
    await frameWhere(lastFrame, (f) => f.includes('Updated in'), 'the first frame');
    stdin.write('p');
    await frameWhere(lastFrame, () => calls.paused.length === 1, 'the pause call');
    bus.emit({ type: 'watch', paused: true, time: Date.now() });
    bus.emit({ type: 'watch', service: 'hello', paused: true, queued: ['/nowhere/main.go'], time: Date.now() });
    const frame = await frameWhere(lastFrame, (f) => f.includes('PAUSED'), 'the paused header');
    assert.match(frame, /queued main\.go \(paused: p resumes\)/);
    assert.match(frame, /p resume · /);
    unmount();
  });

  it('l toggles the current revision\'s logs, ? the help, c clears the history, o opens the URL', async () => {
    const { stdin, lastFrame, calls, unmount } = mountApp(session);
    await frameWhere(lastFrame, (f) => f.includes('Updated in'), 'the first frame');
    stdin.write('l');
    let frame = await frameWhere(lastFrame, (f) => f.includes('logs · hello-00007'), 'the log panel');
    assert.match(frame, /00007 │ \d{4}\/\d\d\/\d\d [\d:]+ hello: listening on :\d+/);
    assert.doesNotMatch(frame, /00006 │/, 'only the serving revision\'s lines');
    stdin.write('l');
    await frameWhere(lastFrame, (f) => !f.includes('logs · hello'), 'the log panel hidden');
    stdin.write('?');
    frame = await frameWhere(lastFrame, (f) => f.includes('Keys'), 'the help');
    assert.match(frame, /p {2}pause or resume watching/);
    stdin.write('?');
    await frameWhere(lastFrame, (f) => f.includes('history · 9'), 'the dashboard back');
    stdin.write('c');
    frame = await frameWhere(lastFrame, (f) => f.includes('history cleared'), 'the cleared history');
    assert.doesNotMatch(frame, /history · /);
    assert.match(frame, /0 warm/);
    assert.match(frame, /cold #1/, 'the cold row stays');
    stdin.write('o');
    frame = await frameWhere(lastFrame, (f) => f.includes('no xdg-open here'), 'the open message');
    assert.match(frame, /open http:\/\/127\.0\.0\.1:\d+ in a browser/, 'the URL is whole');
    assert.match(calls.opened[0] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    unmount();
  });
});

describe('dashboard store', () => {
  it('never reduces on the emitter\'s call and folds a burst into few snapshots', async () => {
    const bus = fakeBus();
    const store = createDashboardStore(bus, { intervalMs: 100, idleIntervalMs: 10_000 });
    let snapshots = 0;
    store.subscribe(() => snapshots++);
    await sleep(20); // the initial (empty) snapshot
    snapshots = 0;
    const started = performance.now();
    // A second of events in a tight loop, spread over ~0.5 s of wall time.
    for (let round = 0; round < 10; round++) {
      const before = store.getSnapshot();
      for (const event of session) bus.emit(event);
      assert.equal(store.getSnapshot(), before, 'emit only queues; nothing is reduced on the emitter\'s call');
      await sleep(50);
    }
    const elapsed = performance.now() - started;
    await sleep(150);
    assert.equal(store.getSnapshot().state.services[0]?.history.length, 50, 'every event was folded in the end');
    // At most one snapshot per 100 ms of the burst, plus the trailing one.
    assert.ok(snapshots <= Math.ceil(elapsed / 100) + 2, `${snapshots} snapshots in ${Math.round(elapsed)} ms`);
    assert.ok(snapshots >= 2);
    store.close();
  });

  it('ticks while an iteration runs (so elapsed times move) and stops ticking when idle', async () => {
    const bus = fakeBus();
    const store = createDashboardStore(bus, { intervalMs: 20, idleIntervalMs: 10_000 });
    bus.emit({ type: 'iteration.start', service: 's', iteration: 1, trigger: ['a.go'], time: Date.now() });
    await sleep(250);
    const whileRunning = store.getSnapshot().frame;
    assert.ok(whileRunning >= 5, `${whileRunning} frames while running`);
    bus.emit({ type: 'iteration.end', service: 's', iteration: 1, result: 'unchanged', ms: 5, time: Date.now() });
    await sleep(60);
    const idle = store.getSnapshot().frame;
    await sleep(200);
    assert.equal(store.getSnapshot().frame, idle, 'no frames while idle');
    store.close();
  });
});
