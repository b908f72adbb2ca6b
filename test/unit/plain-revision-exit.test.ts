// The plain reporter's one line for a revision that ended on its own (issue 15): the service, ✗,
// crashed or exited while starting, the exit code or signal, and its last three log lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPlainEvent } from '../../ui/plain.js';

describe('plain revision.exit line', () => {
  it('names a crash after serving with its exit code and last lines', () => {
    const line = formatPlainEvent({
      type: 'revision.exit',
      time: 0,
      service: 'hello',
      iteration: 4,
      revision: 'hello-00004',
      phase: 'serving',
      code: 2,
      signal: null,
      lastLines: ['listening', 'panic: nil map', 'goroutine 1 [running]:', 'main.main()'],
    });
    assert.equal(line, 'hello: ✗ crashed (exit 2) — last lines: panic: nil map ⏎ goroutine 1 [running]: ⏎ main.main()');
  });

  it('names a signal, a start that failed, and a revision that printed nothing', () => {
    const line = formatPlainEvent({ type: 'revision.exit', time: 0, service: 'api', revision: 'api-00002', phase: 'starting', code: null, signal: 'SIGKILL', lastLines: [] });
    assert.equal(line, 'api: ✗ exited while starting (killed by SIGKILL) — no output');
  });
});
