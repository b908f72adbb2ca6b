// Which processes tsko dev watches for its parent's death (issue 15), on real processes: its
// parent, and through an `sh -c` wrapper (what npx/npm exec/npm run put between npm and tsko) the
// process that started the shell, since the shell outlives a SIGKILLed npm.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parentOf, watchedAncestors } from '../../src/cli/parent-watch.js';
import { descendants } from '../support/dev-process.js';

describe('parent watch', () => {
  it('reads a parent from /proc, and nothing for a process that is gone', () => {
    assert.equal(parentOf(process.pid), process.ppid);
    assert.equal(parentOf(2 ** 22 + 1), undefined);
  });

  it('watches only the parent when it is not a wrapper shell', () => {
    assert.deepEqual(watchedAncestors(process.pid, process.ppid), [process.ppid]);
  });

  it('looks through an sh -c wrapper to the process that started it', async (t) => {
    // Two commands, so the shell stays (a lone command may be exec'd in its place).
    const shell = spawn('sh', ['-c', 'sleep 30; true'], { stdio: 'ignore' });
    t.after(() => {
      for (const pid of [...descendants(shell.pid as number), shell.pid as number]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    });
    let sleeper: number | undefined;
    for (let i = 0; i < 100 && sleeper === undefined; i++) {
      sleeper = descendants(shell.pid as number)[0];
      if (sleeper === undefined) await sleep(20);
    }
    assert.ok(sleeper, 'the shell started sleep');
    assert.deepEqual(watchedAncestors(sleeper, shell.pid as number), [shell.pid, process.pid]);
  });
});
