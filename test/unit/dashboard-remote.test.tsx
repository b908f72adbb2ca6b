// A remote target's own words on the dashboard and in plain lines (issue 13, part 4): a failed
// preflight and a rollout that cannot succeed (rollout.failed) are shown with the target's reason,
// a crash's log lines go to the service's panel, and a passing preflight is a line there too.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { render, cleanup } from 'ink-testing-library';
import type { TskoEvent } from '../../src/events.js';
import { DashboardView } from '../../ui/dashboard/components/dashboard.js';
import { reduceAll, type DashboardState } from '../../ui/dashboard/state.js';
import { formatPlainEvent } from '../../ui/plain.js';
import { fixture } from '../support/dashboard-fixtures.js';

after(() => cleanup());

const session = fixture('hello-session.jsonl');
const last = session.at(-1)!.time;

function frameOf(state: DashboardState): string {
  const { lastFrame, unmount } = render(
    <DashboardView state={state} now={last + 5000} frame={0} columns={120} rows={40} color={false} showErrors={false} selectedError={0} />,
  );
  const frame = lastFrame() ?? '';
  unmount();
  return frame;
}

const failedCreate: TskoEvent = {
  type: 'rollout.failed',
  time: last + 1000,
  service: 'hello',
  iteration: 9,
  target: 'kubernetes',
  reason: 'FailedCreate',
  message: 'pods "hello-7d9" is forbidden: violates PodSecurity "restricted:latest"',
};

const crashLoop: TskoEvent = {
  type: 'rollout.failed',
  time: last + 2000,
  service: 'hello',
  iteration: 10,
  target: 'kubernetes',
  reason: 'CrashLoopBackOff',
  message: 'pod hello-5c4 container hello is crash-looping',
  logs: ['listening on :8080', 'panic: nil map'],
};

const refused: TskoEvent = {
  type: 'preflight',
  time: last + 3000,
  service: 'hello',
  target: 'cloudrun',
  ok: false,
  ms: 420,
  reason: 'SERVICE_DISABLED',
  message: 'Cloud Run Admin API is not enabled in project p1',
};

describe("a remote target's failures, in its own words", () => {
  it('the dashboard shows rollout.failed with the reason, and a crash loop’s lines in the panel', () => {
    const frame = frameOf(reduceAll([...session, failedCreate]));
    assert.match(frame, /rollout failed: FailedCreate: pods "hello-7d9" is forbidden: violates PodSecurity/);
    const state = reduceAll([...session, crashLoop]);
    const logs = state.services[0]!.logs.map((l) => l.line);
    assert.deepEqual(logs.slice(-2), ['listening on :8080', 'panic: nil map']);
    assert.match(frameOf(state), /rollout failed: CrashLoopBackOff/);
  });

  it('the dashboard shows a failed preflight with the reason; a passing one is a panel line, not a notice', () => {
    assert.match(frameOf(reduceAll([...session, refused])), /cloudrun preflight failed: SERVICE_DISABLED: Cloud Run Admin API is not enabled in project p1/);
    const ok = reduceAll([...session, { ...refused, ok: true, message: 'service hello exists', time: last + 3000 } as TskoEvent]);
    assert.doesNotMatch(frameOf(ok), /preflight failed/);
    assert.equal(ok.services[0]!.logs.at(-1)?.line, 'preflight ok: service hello exists');
  });

  it('plain lines carry the same reason', () => {
    assert.equal(formatPlainEvent(failedCreate, false), '[hello #9] rollout failed (kubernetes): FailedCreate: pods "hello-7d9" is forbidden: violates PodSecurity "restricted:latest"');
    assert.equal(formatPlainEvent(crashLoop, false), '[hello #10] rollout failed (kubernetes): CrashLoopBackOff: pod hello-5c4 container hello is crash-looping (2 log lines)');
    assert.equal(formatPlainEvent(refused, false), 'cloudrun preflight failed (SERVICE_DISABLED): Cloud Run Admin API is not enabled in project p1');
  });
});
