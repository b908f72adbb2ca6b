// The dashboard end to end (issue 5's "done when"): the real `tsko dev` on a copy of
// examples/hello inside a tmux pane (a real terminal, 100×30), read back with capture-pane. A save
// adds the new timing row and the "Updated in" line; `r` pressed mid-build restarts it; `p` queues
// a save until resumed; `q` exits 0, prints the final state and leaves no process. And the same
// command with stdout piped falls back to plain lines without being asked.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants, isAlive } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { startTmux } from '../support/tmux.js';
import { repoRoot } from '../support/tsko-cli.js';

async function helloCopy(t: { after(fn: () => unknown): void }) {
  const dir = await makeTempDir('dashboard-hello', t);
  await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  const env = {
    XDG_CACHE_HOME: await makeTempDir('dashboard-cache', t),
    GOCACHE: goCacheDir(),
    TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`,
  };
  return { dir, env, main: join(dir, 'main.go'), port: await freePort() };
}

const front = async (port: number) => (await httpGet(`http://127.0.0.1:${port}/`)).body;

describe('the dashboard in a real terminal', () => {
  it('shows each save as a timing row and "Updated in", restarts on r, queues while paused, and quits on q', { timeout: 240_000 }, async (t) => {
    const { dir, env, main, port } = await helloCopy(t);
    const original = await readFile(main, 'utf8');
    // In one write, as an editor saves (a truncate and a later write can be two saves).
    const save = (n: number) => writeFileSync(main, original.replace('hello v1', `hello v${n}`));
    const command = [join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'bin/tsko.js'), 'dev', '--port', String(port)].map((a) => `'${a}'`).join(' ');
    const terminal = startTmux({
      name: 'tsko-dashboard-test', columns: 100, rows: 30, cwd: dir, env,
      // The pane outlives tsko so the test can read how it exited.
      command: `env -u KO_DOCKER_REPO ${command}; echo "tsko exited $?"; sleep 600`,
    });
    t.after(() => terminal.kill());
    const { pane, waitPane } = terminal;
    const shell = terminal.shellPid();
    /** The revision the result line names, once it says "Updated in". */
    const updated = (screen: string) => /✓ Updated in [\d.]+ s · .* rev (hello-\d+)/.exec(screen)?.[1];
    const nextUpdate = (after: string | undefined) => (s: string) => updated(s) !== undefined && updated(s) !== after;

    // 1. The first (cold) iteration: its row, its result line, the cold row of the table.
    let screen = await waitPane(nextUpdate(undefined), 'the first "Updated in"', 120_000);
    let revision = updated(screen);
    assert.match(screen, /^tsko dev · 1 service · registry 127\.0\.0\.1:\d+ · watching/);
    assert.match(screen, /#\d+ +✓ \d+ms +✓ [\d.]+m?s +✓ \d+ms +✓ \d+ms +✓ \d+ms +✓ \d+ms +✓ [\d.]+m?s/);
    // "cold" only when go compiled most packages (an empty Go cache); a warm first run is "first".
    const cold = /cold #\d+ +\d+ms/.test(screen);
    assert.match(screen, cold ? /cold #\d+ +\d+ms/ : /first #\d+ +\d+ms/);
    assert.match(screen, new RegExp(`#\\d+ +[█▏▎▍▌▋▊▉▸]+ +[\\d.]+ s  ✓ deployed +${revision} \\((${cold ? 'cold' : 'first, warm|first: warm Go cache'})[,):]`));
    assert.match(screen, /r rebuild · p pause · o open · l logs · e error · c clear · \? help · q quit\s*$/);
    assert.equal(await front(port), 'hello v1\n');

    // 2. A save: a new timing row, "Updated in" naming the new revision, and warm rows.
    save(2);
    screen = await waitPane(nextUpdate(revision), 'the save deployed', 60_000);
    revision = updated(screen);
    assert.match(screen, new RegExp(`#\\d+ +[█▏▎▍▌▋▊▉▸]+ +[\\d.]+ s  ✓ deployed +${revision}\\s`), 'its history row');
    assert.match(screen, /warm p50 +\d+ms +[\d.]+m?s/);
    // A speed-up only from a cold first run; from a warm one, the table says why there is none.
    assert.match(screen, cold ? /speed-up +[\d.]+×/ : /speed-up +none: go's cache was warm/);
    assert.match(screen, /changed main\.go/);
    assert.equal(await front(port), 'hello v2\n');

    // 3. `r` pressed while the next save builds restarts it, as a save would.
    save(3);
    const building = await waitPane((s) => /#\d+ +✓ \d+ms +[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] /.test(s), 'the save building', 30_000, 20);
    const interrupted = /#(\d+) +✓ \d+ms +[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] /.exec(building)?.[1];
    terminal.sendKeys('r');
    screen = await waitPane(nextUpdate(revision), 'the rebuilt iteration deployed', 60_000);
    revision = updated(screen);
    assert.match(screen, new RegExp(`#${interrupted} +[█▏▎▍▌▋▊▉▸]+ +[\\d.]+ s  ↻ cancelled`), 'the build r interrupted');
    assert.match(screen, /changed .*\(rebuild key\)/, 'the deployed iteration is the one r started');
    assert.equal(await front(port), 'hello v3\n');

    // 4. `p`: a save is queued, not built, until `p` again.
    terminal.sendKeys('p');
    await waitPane((s) => s.includes('PAUSED (p resumes)'), 'the paused header', 10_000);
    save(4);
    screen = await waitPane((s) => /queued main\.go/.test(s), 'the queued save', 10_000);
    await sleep(500);
    assert.equal(updated(pane()), revision, 'nothing built while paused');
    assert.equal(await front(port), 'hello v3\n', 'nothing deployed while paused');
    terminal.sendKeys('p');
    screen = await waitPane(nextUpdate(revision), 'the queued save deployed after resuming', 60_000);
    revision = updated(screen);
    assert.match(screen, /· watching/);
    assert.equal(await front(port), 'hello v4\n');

    // 5. `q`: exit 0, the final state printed on the normal screen, no process left behind.
    const tsko = descendants(shell).filter((pid) => isAlive(pid));
    assert.ok(tsko.length >= 2, 'tsko and its revision are running');
    terminal.sendKeys('q');
    screen = await waitPane((s) => s.includes('tsko exited'), 'tsko exiting', 10_000);
    assert.match(screen, /tsko exited 0/);
    assert.equal(updated(screen), revision, 'the final state stays on screen');
    for (let i = 0; i < 30 && tsko.some(isAlive); i++) await sleep(100);
    assert.deepEqual(tsko.filter(isAlive), [], 'no tsko, go or revision process is left');
    await assert.rejects(front(port), 'the front port is closed');
  });
});

describe('tsko dev without a terminal', () => {
  it('falls back to plain lines on stderr when stdout is not a TTY', { timeout: 180_000 }, async (t) => {
    const { dir, env, port } = await helloCopy(t);
    const childEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined && k !== 'KO_DOCKER_REPO') childEnv[k] = v;
    const child = spawn(join(repoRoot, 'node_modules/.bin/node'), [join(repoRoot, 'bin/tsko.js'), 'dev', '--port', String(port)], {
      cwd: dir,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    for (let i = 0; i < 1200 && !/\[hello #1\] deployed in/.test(stderr) && child.exitCode === null; i++) await sleep(100);
    assert.match(stderr, /\[hello #1\] change: start/);
    assert.match(stderr, /\[hello #1\] deployed in [\d.]+ m?s · .*hello-00001 · http:\/\/127\.0\.0\.1:\d+/);
    assert.doesNotMatch(stderr, /\x1b\[/, 'no terminal control sequences');
    assert.equal(stdout, '', 'stdout carries results only');
    child.kill('SIGINT');
    assert.equal(await Promise.race([exited, sleep(5000).then(() => 'timeout')]), 130);
  });
});
