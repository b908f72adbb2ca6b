// The dashboard, the plain lines and the session log when things go wrong (issue 15), on the
// recorded hello session plus synthetic events: a serving revision that crashes (revision.exit),
// a first run that was warm or did not say, diagnostics with notes cut to the room there is, the
// `e` view's wrapping, a URL kept whole in a message, and the log file's rotation and pruning.
import assert from 'node:assert/strict';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { render, cleanup } from 'ink-testing-library';
import { createEventBus, type EventOf, type TskoEvent } from '../../src/events.js';
import { openSessionLog, sessionLogName } from '../../src/dev/session-log.js';
import { Footer } from '../../ui/dashboard/components/chrome.js';
import { DashboardView } from '../../ui/dashboard/components/dashboard.js';
import { ErrorView } from '../../ui/dashboard/components/error-view.js';
import { errorDetails, errorLines, fitErrorLines, resultLine, serviceTone, type ErrorLine } from '../../ui/dashboard/describe.js';
import { fitMessage, wrapText } from '../../ui/dashboard/format.js';
import { reduceAll, type DashboardState } from '../../ui/dashboard/state.js';
import { coldWarm } from '../../ui/dashboard/stats.js';
import { describeFirstRun } from '../../ui/first-iteration.js';
import { formatPlainEvent } from '../../ui/plain.js';
import { fixture, withColdFirstBuild } from '../support/dashboard-fixtures.js';
import { makeTempDir } from '../support/tmp.js';

after(() => cleanup());

const recorded = fixture('hello-session.jsonl');
const session = withColdFirstBuild(recorded);
const last = session.at(-1)!.time;

function only(state: DashboardState) {
  assert.equal(state.services.length, 1);
  return state.services[0]!;
}

function frameOf(state: DashboardState, now: number, extra: { columns?: number; rows?: number; showErrors?: boolean; selectedError?: number } = {}): string {
  const { lastFrame, unmount } = render(
    <DashboardView state={state} now={now} frame={0} columns={extra.columns ?? 100} rows={extra.rows ?? 30} color={false} showErrors={extra.showErrors ?? false} selectedError={extra.selectedError ?? 0} />,
  );
  const frame = lastFrame() ?? '';
  unmount();
  return frame;
}

const serving = only(reduceAll(session)).serving!.revision;
const crash = (fields: Partial<EventOf<'revision.exit'>> = {}): TskoEvent => ({
  type: 'revision.exit',
  service: 'hello',
  revision: serving,
  phase: 'serving',
  code: 2,
  signal: null,
  lastLines: ['panic: boom', 'goroutine 1 [running]:'],
  time: last + 1000,
  ...fields,
}) as TskoEvent;

describe('a serving revision that crashes (revision.exit)', () => {
  it('turns the service red: ✗ crashed, its exit code and its last log lines', () => {
    const state = reduceAll([...session, crash()]);
    const hello = only(state);
    assert.deepEqual(hello.crashed, { revision: serving, code: 2, signal: null, lastLines: ['panic: boom', 'goroutine 1 [running]:'], time: last + 1000 });
    assert.equal(serviceTone(hello), 'fail');
    assert.deepEqual(resultLine(hello), { symbol: '✗', tone: 'fail', parts: ['crashed', serving, 'exit code 2'] });
    const frame = frameOf(state, last + 3000);
    assert.match(frame, /^✗ hello /m, 'the title is ✗');
    assert.match(frame, new RegExp(`✗ crashed · ${serving} · exit code 2`));
    assert.match(frame, /│ panic: boom\n {2}│ goroutine 1 \[running\]:/);
    assert.match(frame, new RegExp(`nothing is serving: ${serving} crashed \\(exit code 2\\)`));
    assert.doesNotMatch(frame, /still serving/);
    // e shows it whole too.
    assert.deepEqual(errorDetails(state), [{ service: 'hello', headline: `${serving} crashed (exit code 2)`, lines: ['panic: boom', 'goroutine 1 [running]:'] }]);
  });

  it('names a signal, ignores a revision that never served, and clears on the next deploy', () => {
    const killed = only(reduceAll([...session, crash({ code: null, signal: 'SIGKILL', lastLines: [] })]));
    assert.deepEqual(resultLine(killed)?.parts, ['crashed', serving, 'signal SIGKILL']);
    assert.equal(errorLines(killed, last + 2000)[0]?.text, 'it wrote nothing before it ended');

    // Cut for room, a crash keeps its last words and counts the earlier lines.
    const long = only(reduceAll([...session, crash({ lastLines: ['a', 'b', 'c', 'd', 'panic: boom'] })]));
    assert.deepEqual(fitErrorLines(errorLines(long, last + 2000), 4, 'tail').map((l) => l.text), ['+3 earlier lines (e shows them all)', 'd', 'panic: boom', `nothing is serving: ${serving} crashed (exit code 2)`]);
    assert.match(frameOf(reduceAll([...session, crash({ lastLines: Array.from({ length: 30 }, (_, i) => `line ${i}`) })]), last + 3000, { columns: 80, rows: 24 }), /\+\d+ earlier lines \(e shows them all\)\n(.*\n)*.*│ line 29\n.*nothing is serving/);

    const starting = only(reduceAll([...session, crash({ phase: 'starting', revision: 'hello-00099' })]));
    assert.equal(starting.crashed, undefined, 'a revision that failed to start fails its iteration instead');
    const other = only(reduceAll([...session, crash({ revision: 'hello-00001' })]));
    assert.equal(other.crashed, undefined, 'an old revision ending is not the service crashing');

    const base = { service: 'hello', iteration: 20 } as const;
    const redeployed = only(
      reduceAll([
        ...session,
        crash(),
        { ...base, type: 'iteration.start', trigger: ['r'], time: last + 2000 },
        { ...base, type: 'iteration.end', result: 'deployed', ms: 500, revision: 'hello-00008', time: last + 2500 },
      ]),
    );
    assert.equal(redeployed.crashed, undefined);
    assert.equal(serviceTone(redeployed), 'ok');
  });
});

describe('cold only when go says so', () => {
  it('a warm first run is "first", with no speed-up and the reason', () => {
    const warm = session.map((e) => (e.type === 'go.build' && 'compiled' in e ? { ...e, compiled: 1 } : e));
    const hello = only(reduceAll(warm));
    assert.equal(hello.coldness, 'warm');
    assert.equal(coldWarm(hello).total.speedup, undefined);
    const frame = frameOf(reduceAll(warm), last);
    assert.match(frame, /first #1 +\d+ms/);
    assert.doesNotMatch(frame, /cold #1|×/);
    assert.match(frame, /speed-up +none: go's cache was warm \(1\/62 packages compiled\)/);
    assert.match(frame, /✓ deployed +hello-00001 \(first: warm Go cache\)/);
  });

  it('describes what the first run found, longest first, for the history row to pick what fits', () => {
    assert.deepEqual(describeFirstRun({ compiled: 62, packages: 62 }, { blobsPushed: 3, blobsSkipped: 0 }), ['cold: empty Go cache, empty registry', 'cold: empty Go cache', 'cold']);
    assert.deepEqual(describeFirstRun({ compiled: 0, packages: 62 }, { blobsPushed: 1, blobsSkipped: 2 }), ['first: warm Go cache, registry had 2 of 3 blobs', 'first: warm Go cache', 'first, warm']);
    assert.deepEqual(describeFirstRun(undefined, { blobsPushed: 0, blobsSkipped: 0 }), ['first']);
    assert.deepEqual(describeFirstRun(undefined, { blobsPushed: 2, blobsSkipped: 0 }), ['first: empty registry', 'first']);
  });

  it('a first run that did not say is "first" too; a cold one gets its speed-up', () => {
    assert.equal(only(reduceAll(recorded)).coldness, 'unknown');
    assert.match(frameOf(reduceAll(recorded), last), /speed-up +none: the first build did not say if it was cold/);
    assert.equal(only(reduceAll(session)).coldness, 'cold');
    assert.match(frameOf(reduceAll(session), last), /cold #1 .*\n(.*\n)*.*speed-up +[\d.]+×/);
  });
});

describe('errors are never lost', () => {
  const diagnostic = (line: number, message: string, notes?: string[]) => ({ file: 'main.go', line, column: 2, message, ...(notes ? { notes } : {}) });
  const diagnostics = [
    diagnostic(13, 'not enough arguments in call to greet', ['have ()', 'want (string)']),
    diagnostic(14, 'too many arguments in call to greet', ['have (string, string)', 'want (string)']),
    diagnostic(15, 'undefined: one'),
    diagnostic(16, 'undefined: two'),
    diagnostic(17, `undefined: ${'x'.repeat(150)}`),
    diagnostic(18, 'no required module provides package example.com/nope; to add it:', ['go get example.com/nope']),
  ];
  const broken = [
    ...session,
    { type: 'iteration.start', service: 'hello', iteration: 20, trigger: ['main.go'], time: last + 100 },
    { type: 'iteration.end', service: 'hello', iteration: 20, result: 'build-failed', ms: 200, time: last + 300, error: { code: 'GO_BUILD', message: 'go build failed', diagnostics } },
  ] as TskoEvent[];

  it('lists every note under its diagnostic and cuts the block with "+N more", keeping what serves last', () => {
    const hello = only(reduceAll(broken));
    const lines = errorLines(hello, last + 1000);
    assert.equal(lines.length, 6 + 5 + 1);
    assert.deepEqual(lines.slice(0, 3).map((l) => [l.lead, l.text]), [['main.go:13:2', 'not enough arguments in call to greet'], [' ', 'have ()'], [' ', 'want (string)']]);
    assert.deepEqual(lines.at(-2), { lead: ' ', text: 'go get example.com/nope', tone: 'dim' });
    const cut = fitErrorLines(lines, 5);
    assert.equal(cut.length, 5);
    assert.deepEqual(cut.slice(0, 3), lines.slice(0, 3));
    assert.equal(cut[3]?.text, '+8 more lines (e shows every error in full)');
    assert.match(cut[4]?.text ?? '', /^still serving hello-00007/);
    assert.deepEqual(fitErrorLines(lines, 2).map((l: ErrorLine) => l.text.slice(0, 3)), ['+11', 'sti']);
    assert.equal(fitErrorLines(lines, 20), lines);
  });

  it('shows go\'s own lines for a build that failed without file:line, and counts a long detail\'s earlier lines', () => {
    const goMod = [
      ...session,
      { type: 'iteration.end', service: 'hello', iteration: 20, result: 'build-failed', ms: 50, time: last + 300, error: { code: 'GO_BUILD', message: 'go build failed for example.com/hello (linux/amd64): missing go.sum entry for module providing package x', detail: 'go: missing go.sum entry for module providing package x\n\tgo get x' } },
      { type: 'iteration.end', service: 'hello', iteration: 21, result: 'deploy-failed', ms: 50, time: last + 400, error: { code: 'REVISION_EXITED', message: 'revision exited', detail: 'one\ntwo\nthree\nfour\nfive' } },
    ] as TskoEvent[];
    const built = errorLines(only(reduceAll(goMod.slice(0, -1))), last + 1000).map((l) => `${l.lead ?? ''} ${l.text}`.trim());
    assert.deepEqual(built.slice(0, 3), ['go build failed for example.com/hello (linux/amd64): missing go.sum entry for module providing package x', '│ go: missing go.sum entry for module providing package x', '│     go get x']);
    const deployed = errorLines(only(reduceAll(goMod)), last + 1000).map((l) => `${l.lead ?? ''} ${l.text}`.trim());
    assert.deepEqual(deployed.slice(0, 5), ['revision exited', '│ (2 earlier lines: e shows them)', '│ three', '│ four', '│ five']);
    assert.deepEqual(errorDetails(reduceAll(goMod))[0]?.lines, ['one', 'two', 'three', 'four', 'five']);
  });

  it('e shows the chosen error whole, wrapping a long line instead of cutting it', () => {
    const state = reduceAll(broken);
    const frame = frameOf(state, last + 1000, { columns: 80, rows: 24, showErrors: true, selectedError: 4 });
    assert.match(frame, /error 5 of 6 · ↑\/↓ choose · e or Esc closes/);
    const rows = frame.split('\n');
    for (const row of rows) assert.ok([...row].length <= 80, `"${row}" fits`);
    assert.ok(frame.replaceAll('\n', '').includes(`main.go:17:2: undefined: ${'x'.repeat(150)}`), frame);
    assert.match(frame, /main\.go:18:2: no required module provides package example\.com\/nope; to add it:\n {4}go get example\.com\/nope/);
    assert.doesNotMatch(frame, /main\.go:13:2/, 'the chosen error comes first');

    const none = render(<ErrorView errors={[]} selected={3} width={80} rows={10} many={false} />);
    assert.match(none.lastFrame() ?? '', /errors · none: nothing has failed/);
    none.unmount();
    const tight = render(<ErrorView errors={errorDetails(state)} selected={0} width={40} rows={6} many={false} />);
    assert.match(tight.lastFrame() ?? '', /… more below \(↓ for the next of 5\)/);
    tight.unmount();
  });

  it('wraps at a space near the end, mid-word otherwise, and never drops text', () => {
    assert.deepEqual(wrapText('aaa bbb ccc', 7), ['aaa bbb', 'ccc']);
    assert.deepEqual(wrapText('abcdefghij', 4), ['abcd', 'efgh', 'ij']);
    const long = 'word '.repeat(40).trim();
    assert.equal(wrapText(long, 13).join(' '), long);
  });

  it('plain lines print every diagnostic with its notes, and the ✗ stage', () => {
    const end = broken.at(-1)!;
    const text = formatPlainEvent(end) ?? '';
    const lines = text.split('\n');
    assert.equal(lines[0], '[hello #20] build-failed in 200 ms: go build failed');
    assert.equal(lines.filter((l) => /^ {2}main\.go:\d+:2: /.test(l)).length, 6);
    assert.ok(lines.includes(`  main.go:17:2: undefined: ${'x'.repeat(150)}`));
    assert.deepEqual(lines.slice(-2), ['  main.go:18:2: no required module provides package example.com/nope; to add it:', '      go get example.com/nope']);
    assert.equal(formatPlainEvent({ type: 'stage.end', stage: 'push', ms: 1500, ok: false, service: 'hello', iteration: 3, time: 0 }), '[hello #3] ✗ push failed after 1.50 s');
    assert.equal(formatPlainEvent({ type: 'stage.end', stage: 'push', ms: 15, ok: false, cancelled: true, time: 0 }), undefined);
    assert.equal(
      formatPlainEvent(crash({ iteration: 7 })),
      `[hello #7] ✗ ${serving} crashed (exit code 2)\n  │ panic: boom\n  │ goroutine 1 [running]:`,
    );
  });
});

describe('a message with a URL at 80 columns', () => {
  const url = 'http://127.0.0.1:38421';
  it('keeps the URL whole: the key names shrink first, then the words after it', () => {
    const { lastFrame, unmount } = render(<Footer compact={false} message={`open ${url} in a browser (no xdg-open here)`} paused={false} showLogs={false} width={80} />);
    const line = lastFrame() ?? '';
    assert.equal(line, `r p o l e c ? q  open ${url} in a browser (no xdg-open here)`);
    unmount();
    assert.equal(fitMessage(`open ${url} in a browser (no xdg-open here)`, 30), `open ${url}…`);
    assert.equal(fitMessage(`open ${url} in a browser`, 20), 'http://127.0.0.1:38…');
    assert.equal(fitMessage('watching paused: saves are queued', 10), 'watching …');
  });
});

describe('the session log', () => {
  it('writes every event as a JSON line, its own path first, and everything buffered on close', async (t) => {
    const dir = await makeTempDir('session-log', t);
    const bus = createEventBus();
    const seen: TskoEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    const log = await openSessionLog({ dir, events: bus, flushMs: 10_000, now: new Date('2026-12-06T02:11:06.123Z'), pid: 42 });
    assert.equal(log.path, join(dir, '20261206T021106Z-42.jsonl'));
    assert.deepEqual(seen[0], { type: 'session.log', path: log.path, time: seen[0]!.time });
    for (let i = 0; i < 100; i++) bus.emit({ type: 'revision.log', service: 'hello', revision: 'hello-00001', stream: 'stdout', line: `line ${i}` });
    assert.equal(await readFile(log.path, 'utf8'), '', 'nothing written on the emitter\'s call');
    await log.close();
    await log.close();
    const events = (await readFile(log.path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as TskoEvent);
    assert.equal(events.length, 101);
    assert.equal(events[0]?.type, 'session.log');
    assert.deepEqual(events.at(-1), seen.at(-1));
    bus.emit({ type: 'log', level: 'info', message: 'after close' });
    assert.equal((await readFile(log.path, 'utf8')).includes('after close'), false);
  });

  it('rotates past its size to <name>.1 and keeps only the newest sessions', async (t) => {
    const dir = await makeTempDir('session-log-bound', t);
    for (let i = 0; i < 5; i++) {
      const old = join(dir, sessionLogName(new Date(Date.UTC(2026, 0, 1 + i)), 1000 + i));
      await writeFile(old, '{}\n');
      await writeFile(`${old}.1`, '{}\n');
      const when = new Date(Date.UTC(2026, 0, 1 + i));
      await utimes(old, when, when);
    }
    const bus = createEventBus();
    const log = await openSessionLog({ dir, events: bus, flushMs: 1, maxBytes: 2000, keep: 3 });
    for (let i = 0; i < 40; i++) {
      bus.emit({ type: 'log', level: 'info', message: `message ${i} ${'y'.repeat(100)}` });
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    await log.close();
    const names = (await readdir(dir)).sort();
    const base = log.path.slice(dir.length + 1);
    assert.deepEqual(
      names,
      [sessionLogName(new Date(Date.UTC(2026, 0, 4)), 1003), `${sessionLogName(new Date(Date.UTC(2026, 0, 4)), 1003)}.1`, sessionLogName(new Date(Date.UTC(2026, 0, 5)), 1004), `${sessionLogName(new Date(Date.UTC(2026, 0, 5)), 1004)}.1`, base, `${base}.1`].sort(),
    );
    const current = await readFile(log.path, 'utf8');
    const rotated = await readFile(`${log.path}.1`, 'utf8');
    assert.ok(Buffer.byteLength(current) <= 2000 && Buffer.byteLength(rotated) <= 2000, 'each half stays under the cap');
    assert.match(current, /message 39 /, 'the newest events are in the file itself');
  });
});
