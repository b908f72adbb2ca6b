// `tsko dev` when a revision dies (issue 15): one that exits after it was serving is reported at
// once (revision.exit, phase serving, its exit code or signal and last lines), the front port
// answers a 503 page naming the crash instead of a bare 502, a save deploys again, and the
// dashboard's `r` restarts the same program as a new revision (no "No change"). One that exits
// before it ever answered is reported with phase starting.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { descendants, startDev, type DevProcess } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

type End = EventOf<'iteration.end'>;
type Exit = EventOf<'revision.exit'>;
const isEnd = (event: TskoEvent): event is End => event.type === 'iteration.end';
const isExit = (event: TskoEvent): event is Exit => event.type === 'revision.exit';

/** `/` answers with the revision's name; `/crash` prints a line and exits 2; `/die` waits to be killed. */
const MAIN = (greeting: string, startup = '') => `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	${startup}
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("about to crash: <bad> state & more")
		os.Exit(2)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, ${JSON.stringify(greeting)}, os.Getenv("K_REVISION"))
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`;

async function service(t: TestContext): Promise<string> {
  const dir = await makeTempDir('dev-crash', t);
  await writeFile(join(dir, 'go.mod'), 'module example.com/crashy\n\ngo 1.22\n');
  await writeFile(join(dir, 'main.go'), MAIN('up'));
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  return dir;
}

async function env(t: TestContext): Promise<Record<string, string | undefined>> {
  return { XDG_CACHE_HOME: await makeTempDir('dev-crash-cache', t), GOCACHE: goCacheDir(), TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`, KO_DOCKER_REPO: undefined };
}

async function save(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

async function get(url: string, accept?: string): Promise<{ status: number; body: string; type: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000), ...(accept ? { headers: { accept } } : {}) });
  return { status: response.status, body: await response.text(), type: response.headers.get('content-type') ?? '' };
}

/** Asks the revision to crash; the connection dies with it, so the request itself fails. */
async function crash(port: number): Promise<void> {
  await fetch(`http://127.0.0.1:${port}/crash`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text()).catch(() => undefined);
}

function settled(dev: DevProcess, from: number): Promise<End> {
  return dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from }) as Promise<End>;
}

describe('tsko dev when a revision dies', () => {
  it('reports a crash after serving at once, answers a 503 page naming it, and deploys again on a save', async (t) => {
    const dir = await service(t);
    const port = await freePort();
    const dev = startDev(['--port', String(port), '--ready-timeout', '5000'], { cwd: dir, env: await env(t) });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const first = await settled(dev, 0);
    assert.equal(first.result, 'deployed', JSON.stringify(first));
    assert.equal((await get(`http://127.0.0.1:${port}/`)).body, `up ${first.revision}\n`);

    // 1. It exits on its own while serving: one revision.exit, phase serving, code 2, its last line.
    let mark = dev.events.length;
    await crash(port);
    const crashed = (await dev.waitFor(isExit, { from: mark, timeoutMs: 10_000 })) as Exit;
    assert.equal(crashed.phase, 'serving');
    assert.equal(crashed.revision, first.revision);
    assert.equal(crashed.service, 'crashy');
    assert.equal(crashed.code, 2);
    assert.equal(crashed.signal, null);
    assert.ok(crashed.lastLines.includes('about to crash: <bad> state & more'), JSON.stringify(crashed.lastLines));

    // 2. The front port answers 503 with a page naming the crash, plain or HTML.
    const page = await get(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 503);
    assert.match(page.body, new RegExp(`revision ${first.revision} crashed \\(it exited with code 2\\)`));
    assert.match(page.body, /\nabout to crash: <bad> state & more\n/);
    assert.match(page.body, /press r/);
    const html = await get(`http://127.0.0.1:${port}/`, 'text/html,application/xhtml+xml');
    assert.equal(html.status, 503);
    assert.match(html.type, /^text\/html/);
    assert.match(html.body, /<pre>about to crash: &#60;bad&#62; state &#38; more<\/pre>/);

    // 3. The same program again (an edit that changes nothing) is a new revision, not "unchanged".
    mark = dev.events.length;
    await save(join(dir, 'main.go'), MAIN('up'));
    const again = await settled(dev, mark);
    assert.equal(again.result, 'deployed', JSON.stringify(again));
    assert.notEqual(again.revision, first.revision);
    assert.equal((await get(`http://127.0.0.1:${port}/`)).body, `up ${again.revision}\n`);

    // 4. Killed from outside (SIGKILL): reported with the signal.
    mark = dev.events.length;
    const revisionPid = descendants(dev.child.pid as number).find((pid) => {
      try {
        return execFileSync('cat', [`/proc/${pid}/environ`], { encoding: 'utf8' }).split('\0').includes(`K_REVISION=${again.revision}`);
      } catch {
        return false;
      }
    });
    assert.ok(revisionPid, 'the serving revision runs under tsko');
    process.kill(revisionPid, 'SIGKILL');
    const killed = (await dev.waitFor(isExit, { from: mark, timeoutMs: 10_000 })) as Exit;
    assert.equal(killed.phase, 'serving');
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal(killed.code, null);
    assert.match((await get(`http://127.0.0.1:${port}/`)).body, /it was killed by SIGKILL/);

    // 5. A revision that exits before it answers: phase starting, then the deploy fails.
    mark = dev.events.length;
    await save(join(dir, 'main.go'), MAIN('up', 'fmt.Println("no config, giving up"); os.Exit(3)'));
    const starting = (await dev.waitFor(isExit, { from: mark, timeoutMs: 60_000 })) as Exit;
    assert.equal(starting.phase, 'starting');
    assert.equal(starting.code, 3);
    assert.deepEqual(starting.lastLines, ['no config, giving up']);
    assert.equal((await settled(dev, mark)).result, 'deploy-failed');
    // Nothing else ended on its own: a stopped (replaced) revision is never reported.
    assert.equal(dev.events.filter(isExit).length, 3, JSON.stringify(dev.events.filter(isExit)));

    dev.child.kill('SIGTERM');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });

  // The `r` key exists only in the dashboard, so this part runs `tsko dev` in a tmux pane.
  const SOCKET = `tsko-crash-test-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8', timeout: 10_000 });
  after(() => {
    try {
      tmux('kill-server');
    } catch {
      // Never started, or gone.
    }
  });

  it('restarts the crashed program as a new revision on r, without a source change', { timeout: 240_000 }, async (t) => {
    const dir = await service(t);
    const port = await freePort();
    const vars = await env(t);
    const command = [join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'bin/tsko.js'), 'dev', '--port', String(port)].map((a) => `'${a}'`).join(' ');
    tmux(
      'new-session', '-d', '-s', 'crash', '-x', '100', '-y', '30', '-c', dir,
      ...Object.entries(vars).flatMap(([k, v]) => (v === undefined ? [] : ['-e', `${k}=${v}`])),
      `env -u KO_DOCKER_REPO ${command}; sleep 600`,
    );
    /** What the front port answers, polled (bounded) until `check` holds. */
    const waitFront = async (check: (r: { status: number; body: string }) => boolean, what: string) => {
      let last: { status: number; body: string } | string = 'nothing yet';
      for (let i = 0; i < 600; i++) {
        try {
          const response = await get(`http://127.0.0.1:${port}/`);
          if (check(response)) return response;
          last = response;
        } catch (err) {
          last = String(err);
        }
        await sleep(200);
      }
      assert.fail(`the front port never answered ${what}; last: ${JSON.stringify(last)}\n${tmux('capture-pane', '-p', '-t', 'crash')}`);
    };
    const serving = await waitFront((r) => r.status === 200, 'a first revision');
    const firstRevision = /up (\S+)/.exec(serving.body)?.[1];
    assert.ok(firstRevision);
    await crash(port);
    await waitFront((r) => r.status === 503 && r.body.includes(`${firstRevision} crashed`), 'the crash page');
    // Before the fix, r said "No change" and the port stayed down until an edit.
    tmux('send-keys', '-t', 'crash', 'r');
    const restarted = await waitFront((r) => r.status === 200, 'a restarted revision');
    assert.notEqual(/up (\S+)/.exec(restarted.body)?.[1], firstRevision, restarted.body);
    tmux('send-keys', '-t', 'crash', 'q');
  });
});
