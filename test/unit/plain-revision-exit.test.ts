// The plain reporter's one line for a revision that ended on its own (issue 15): the service, ✗,
// crashed or exited while starting, the exit code or signal, then every last log line it kept.
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
    assert.equal(line, ['[hello #4] ✗ hello-00004 crashed (exit code 2)', '  │ listening', '  │ panic: nil map', '  │ goroutine 1 [running]:', '  │ main.main()'].join('\n'));
  });

  it('names a signal, a start that failed, and a revision that printed nothing', () => {
    const line = formatPlainEvent({ type: 'revision.exit', time: 0, service: 'api', revision: 'api-00002', phase: 'starting', code: null, signal: 'SIGKILL', lastLines: [] });
    assert.equal(line, '✗ api-00002 exited while starting (signal SIGKILL)');
  });
});
