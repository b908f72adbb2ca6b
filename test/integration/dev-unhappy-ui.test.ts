// The dev loop's unhappy path as the user sees it (issue 15), through the real `tsko dev`: in a
// real 80×24 terminal (tmux), a failed build is ✗ on its build cell, its diagnostics keep their
// notes and are cut with "+N more", `e` shows every error whole with long lines wrapped, `o`
// keeps the URL whole, the header names the session log and a warm first run is "first", not
// "cold"; with stdout piped, plain lines name the ✗ stage and print every diagnostic with every
// note (a `go get …` fix included); and the session log file holds every event and revision line.
// Also, on an empty Go cache, the first build says it compiled most packages (cold) and a later
// one says nothing.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { descendants, isAlive, startDev } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { shellLine, startTmux } from '../support/tmux.js';
import { repoRoot } from '../support/tsko-cli.js';

const GO_MOD = 'module example.com/svc\n\ngo 1.22\n';

const GOOD = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	fmt.Println("svc starting")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "one") })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`;

const LONG_NAME = 'thisIsAVeryLongIdentifierThatTheCompilerNamesInFullSoItsLineIsMuchWiderThanEightyColumns';

/** Six compiler errors; two carry have/want notes; one is wider than the terminal. */
const MANY_ERRORS = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func greet(name string) string { return "hi " + name }

func main() {
	fmt.Println("svc starting")
	greet()
	greet("a", "b")
	undefinedOne()
	undefinedTwo()
	undefinedThree()
	${LONG_NAME}()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "one") })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`;

/** An import no module provides: go's answer ends in a `go get …` line. */
const MISSING_MODULE = GOOD.replace('"os"\n', '"os"\n\n\t"example.com/nope/missing"\n').replace('fmt.Println("svc starting")', 'fmt.Println("svc starting", missing.X)');

async function service(t: TestContext): Promise<{ dir: string; main: string; env: Record<string, string>; port: number; logs: string }> {
  const dir = await makeTempDir('unhappy-svc', t);
  await writeFile(join(dir, 'go.mod'), GO_MOD);
  await writeFile(join(dir, 'main.go'), GOOD);
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  const cache = await makeTempDir('unhappy-cache', t);
  // No desktop opener on this PATH, whatever the machine has: `o` must then show the URL.
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => {
      try {
        execFileSync('test', ['-x', join(d, 'xdg-open')]);
        return false;
      } catch {
        return true;
      }
    })
    .join(delimiter);
  const env = { XDG_CACHE_HOME: cache, GOCACHE: goCacheDir(), TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`, PATH: path };
  // The service's packages in go's cache already, built as tsko builds, so its first run is warm.
  execFileSync('go', ['build', '-trimpath', '-o', join(dir, 'prewarm.bin'), '.'], { cwd: dir, env: { ...process.env, ...env, CGO_ENABLED: '0', GOOS: 'linux', GOARCH: 'amd64' }, stdio: 'ignore' });
  return { dir, main: join(dir, 'main.go'), env, port: await freePort(), logs: join(cache, 'tsko', 'dev', 'logs') };
}

/** Saves in one rename, as careful editors do, so the loop never builds a half-written file. */
async function save(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

async function readSessionLog(dir: string): Promise<{ path: string; events: TskoEvent[] }> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.jsonl'));
  assert.equal(names.length, 1, `one session log in ${dir}: ${names.join(', ')}`);
  const path = join(dir, names[0] as string);
  const text = await readFile(path, 'utf8');
  return { path, events: text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as TskoEvent) };
}

const CELL = '[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓✗↻]';

describe('the unhappy dev loop in a real 80×24 terminal', () => {
  it('✗ on the failed stage, notes and "+N more", e shows every error whole, o keeps the URL, the header names the log', { timeout: 240_000 }, async (t) => {
    const svc = await service(t);
    const command = shellLine([join(repoRoot, 'node_modules/.bin/node'), join(repoRoot, 'bin/tsko.js'), 'dev', '--port', String(svc.port)]);
    const term = startTmux({
      name: 'tsko-unhappy',
      columns: 80,
      rows: 24,
      cwd: svc.dir,
      env: svc.env,
      // The pane outlives tsko so the test can read what it printed on exit.
      command: `env -u KO_DOCKER_REPO ${command}; echo "tsko exited $?"; sleep 600`,
    });
    t.after(() => term.kill());
    const shell = term.shellPid();

    // 1. The first run deploys; go's cache was warm, so it is "first", with no speed-up promised.
    let screen = await term.waitPane((s) => /✓ Updated in/.test(s), 'the first "Updated in"', 120_000);
    assert.match(screen, /^tsko dev · 1 service · .*watching · log …\/\d{8}T\d{6}Z-\d+\.jsonl/, 'the header names the session log');
    assert.match(screen, /first #1 +\d+ms/, 'a warm first run is not called cold');
    assert.doesNotMatch(screen, /cold #1|\d×/);
    assert.match(screen, /✓ deployed +svc-\d+ \(first, warm\)/, 'at 80 columns, the short form');
    assert.match(screen, /warm +after the next deploy; no speed-up \(go's cache was warm\)/);
    assert.match(screen, /r rebuild · p pause · o open · l logs · e error · c clear · \? help · q quit/, 'e is in the key line');
    assert.equal((await httpGet(`http://127.0.0.1:${svc.port}/`)).body, 'one\n');

    // 2. o with no desktop opener: the message keeps the whole URL within 80 columns.
    term.sendKeys('o');
    screen = await term.waitPane((s) => /in a browser/.test(s), 'the open message', 10_000);
    const footer = screen.trimEnd().split('\n').at(-1) ?? '';
    assert.match(footer, new RegExp(`open http://127\\.0\\.0\\.1:${svc.port} in a browser`), footer);
    assert.ok([...footer].length <= 80);

    // 3. A save with six compiler errors: ✗ on the build cell, notes shown, the rest counted.
    await save(svc.main, MANY_ERRORS);
    screen = await term.waitPane((s) => /Build failed after/.test(s), 'the failed build', 60_000);
    assert.match(screen, new RegExp(`#2 +✓ \\d+ms +✗ [\\d.]+m?s +– +– +– +– +✗ [\\d.]+m?s`), 'build is ✗, the stages after it never ran');
    assert.match(screen, /✗ Build failed after [\d.]+ s · 6 compiler errors/);
    assert.match(screen, /main\.go:13:\d+ not enough arguments in call to greet/);
    assert.match(screen, /^ +have \(\)$/m, 'the note under it');
    assert.match(screen, /^ +want \(string\)$/m);
    assert.match(screen, /\+\d+ more lines? \(e shows every error in full\)/);
    assert.match(screen, /still serving svc-\d+/);
    for (const line of screen.split('\n')) assert.ok([...line].length <= 80, `"${line}" fits`);

    // 4. e: every error whole; ↓ chooses the long one, which wraps instead of being cut.
    term.sendKeys('e');
    screen = await term.waitPane((s) => /error 1 of 6 · ↑\/↓ choose · e or Esc closes/.test(s), 'the error view', 10_000);
    assert.match(screen, /main\.go:13:\d+: not enough arguments in call to greet\n +have \(\)\n +want \(string\)/);
    for (let i = 0; i < 5; i++) term.sendKeys('Down');
    screen = await term.waitPane((s) => /error 6 of 6/.test(s), 'the last error chosen', 10_000);
    assert.ok(screen.replaceAll('\n', '').includes(`main.go:18:2: undefined: ${LONG_NAME}`), `the long line whole, wrapped:\n${screen}`);
    assert.ok(screen.split('\n').some((line) => line.startsWith('main.go:18:2: undefined: this') && !line.includes(LONG_NAME)), 'it wraps');
    term.sendKeys('Escape');
    screen = await term.waitPane((s) => /Build failed after/.test(s) && !/error 6 of 6/.test(s), 'the dashboard back after Esc', 10_000);

    // 5. Fixed: it deploys again (a warm run now).
    await save(svc.main, GOOD.replace('"one"', '"two"'));
    screen = await term.waitPane((s) => /#3 +✓ \d+ms +✓/.test(s) && /✓ Updated in/.test(s), 'the fix deployed', 60_000);
    assert.match(screen, new RegExp(`#3 +${CELL} `));
    assert.equal((await httpGet(`http://127.0.0.1:${svc.port}/`)).body, 'two\n');

    // 6. q: the log's path is printed on exit, and the file holds every event and revision line.
    const tsko = descendants(shell).filter(isAlive);
    term.sendKeys('q');
    await term.waitPane((s) => s.includes('tsko exited'), 'tsko exiting', 10_000);
    const joined = term.tmux('capture-pane', '-p', '-J', '-t', 'main');
    assert.match(joined, /tsko exited 0/);
    const log = await readSessionLog(svc.logs);
    assert.ok(joined.includes(`session log: ${log.path}`), joined);
    assert.deepEqual(log.events[0], { ...log.events[0], type: 'session.log', path: log.path });
    const failed = log.events.find((e): e is EventOf<'iteration.end'> => e.type === 'iteration.end' && e.result === 'build-failed');
    assert.equal(failed?.error?.diagnostics?.length, 6);
    assert.deepEqual(failed?.error?.diagnostics?.[0]?.notes, ['have ()', 'want (string)']);
    assert.ok(log.events.some((e) => e.type === 'revision.log' && e.line === 'svc starting'), 'revision lines are in the log');
    assert.ok(log.events.some((e) => e.type === 'stage.end' && e.stage === 'build' && !e.ok), 'the failed stage is in the log');
    for (let i = 0; i < 30 && tsko.some(isAlive); i++) await sleep(100);
    assert.deepEqual(tsko.filter(isAlive), [], 'nothing left running');
  });
});

describe('the unhappy dev loop in plain lines', () => {
  it('names the ✗ stage, prints every diagnostic with every note, a go get fix included, and the session log', { timeout: 240_000 }, async (t) => {
    const svc = await service(t);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...svc.env })) if (v !== undefined && k !== 'KO_DOCKER_REPO') env[k] = v;
    const child = spawn(join(repoRoot, 'node_modules/.bin/node'), [join(repoRoot, 'bin/tsko.js'), 'dev', '--port', String(svc.port)], {
      cwd: svc.dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    const waitFor = async (pattern: RegExp, what: string, timeoutMs = 60_000) => {
      for (let i = 0; i < timeoutMs / 100 && !pattern.test(stderr) && child.exitCode === null; i++) await sleep(100);
      assert.match(stderr, pattern, `${what}; stderr:\n${stderr}`);
    };

    await waitFor(/\[svc #1\] deployed in/, 'the first deploy', 120_000);
    assert.match(stderr, /^session log: \S+\.jsonl$/m);
    assert.match(stderr, /\[svc #1\] go build example\.com\/svc \(linux\/amd64\) took [\d.]+ m?s: warm Go cache: compiled [01] of \d+ packages/);

    // A missing module: the ✗ stage, go's line and its `go get` fix, indented under it.
    await save(svc.main, MISSING_MODULE);
    await waitFor(/\[svc #2\] build-failed in/, 'the missing module');
    assert.match(stderr, /\[svc #2\] ✗ build failed after [\d.]+ m?s/);
    assert.match(stderr, /\n {2}main\.go:\d+:\d+: no required module provides package example\.com\/nope\/missing; to add it:\n {6}go get example\.com\/nope\/missing\n/);

    // Six errors: every one printed, with its notes, after the one-line result.
    await save(svc.main, MANY_ERRORS);
    await waitFor(/\[svc #3\] build-failed in/, 'the many errors');
    const block = stderr.slice(stderr.indexOf('[svc #3] build-failed in'));
    const printed = block.split('\n').filter((line) => /^ {2}main\.go:\d+:\d+: /.test(line));
    assert.equal(printed.length, 6, block);
    assert.match(block, /not enough arguments in call to greet\n {6}have \(\)\n {6}want \(string\)/);
    assert.match(block, /too many arguments in call to greet\n {6}have \(string, string\)\n {6}want \(string\)/);
    assert.ok(block.includes(`main.go:18:2: undefined: ${LONG_NAME}`), 'a long line is printed whole');

    child.kill('SIGINT');
    assert.equal(await Promise.race([exited, sleep(5000).then(() => 'timeout')]), 130);
    const log = await readSessionLog(svc.logs);
    assert.ok(stderr.includes(`session log: ${log.path}\n`), 'named when it starts');
    assert.ok(stderr.trimEnd().endsWith(`session log: ${log.path}`), `and last, on exit:\n${stderr.slice(-400)}`);
    const missing = log.events.find((e): e is EventOf<'iteration.end'> => e.type === 'iteration.end' && e.iteration === 2);
    assert.deepEqual(missing?.error?.diagnostics?.[0]?.notes, ['go get example.com/nope/missing']);
    assert.equal(stdout, '', 'stdout carries results only');
  });
});

describe('a first build on an empty Go cache', () => {
  it('says it compiled most packages (cold); a later build of the same binary says nothing', { timeout: 300_000 }, async (t) => {
    const dir = await makeTempDir('cold-svc', t);
    await writeFile(join(dir, 'go.mod'), GO_MOD);
    // No imports beyond the runtime's own: the smallest cold build there is.
    await writeFile(join(dir, 'main.go'), 'package main\n\nfunc main() { select {} }\n');
    await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
    const env = {
      XDG_CACHE_HOME: await makeTempDir('cold-cache', t),
      GOCACHE: await makeTempDir('cold-gocache', t),
      TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`,
      KO_DOCKER_REPO: undefined,
    };
    const dev = startDev(['--port', String(await freePort()), '--ready-timeout', '1000'], { cwd: dir, env });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const first = (await dev.waitFor((e) => e.type === 'go.build', { timeoutMs: 240_000 })) as EventOf<'go.build'>;
    assert.ok(first.packages !== undefined && first.packages > 5, JSON.stringify(first));
    assert.ok(first.compiled !== undefined && first.compiled * 2 > first.packages, `most packages compiled: ${JSON.stringify(first)}`);
    await dev.waitFor((e) => e.type === 'iteration.end' && e.iteration === 1, { timeoutMs: 60_000 });
    const mark = dev.events.length;
    await save(join(dir, 'main.go'), 'package main\n\nfunc main() { println("x"); select {} }\n');
    const second = (await dev.waitFor((e) => e.type === 'go.build', { from: mark, timeoutMs: 60_000 })) as EventOf<'go.build'>;
    assert.equal(second.compiled, undefined, 'only a binary\'s first build asks go');
    assert.ok(dev.events.some((e) => e.type === 'session.log'), 'the JSON stream names the session log too');
    dev.child.kill('SIGTERM');
    assert.notEqual(await dev.exited(5000), 'timeout');
    assert.match(dev.stderr(), /^session log: \S+\.jsonl$/m);
  });
});
