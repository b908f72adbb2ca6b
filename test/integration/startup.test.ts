// How tsko starts (issue 12 goal 4, issue 15's Node check): each command loads only what it uses —
// no Ink, React, Kubernetes or Google client for `version`, `--help` or `build` — recorded by a
// module hook in the real CLI; `tsko version` prints package.json's version; under a Node older
// than `engines` every command prints one line and exits 1; and `tsko dev` is one process that
// stops, revisions and all, when whatever started it dies without a signal (SIGKILL).
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import type { TskoEvent } from '../../src/events.js';
import { findOnPath } from '../../src/cli/which.js';
import { descendants, isAlive } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko } from '../support/tsko-cli.js';

const node = join(repoRoot, 'node_modules/.bin/node');
const tskoBin = join(repoRoot, 'bin/tsko.js');
const hook = join(repoRoot, 'dist/test/support/record-modules.js');
const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; engines: { node: string } };

/** Packages no command loads unless it draws a dashboard or talks to a cloud. */
const DASHBOARD_AND_CLOUDS = ['ink', 'react', 'react-reconciler', '@kubernetes/client-node', 'google-auth-library', '@google-cloud/run'];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The packages (by name) and tsko's own modules (relative to dist/) among the recorded URLs. */
function classify(urls: string[]): { packages: Set<string>; ours: string[] } {
  const packages = new Set<string>();
  const ours: string[] = [];
  const distPrefix = new URL('dist/', `file://${repoRoot.endsWith('/') ? repoRoot : `${repoRoot}/`}`).href;
  for (const url of urls) {
    const inPackage = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (inPackage?.[1]) packages.add(inPackage[1]);
    else if (url.startsWith(distPrefix)) ours.push(url.slice(distPrefix.length));
  }
  return { packages, ours };
}

async function modulesOf(args: string[], t: { after(fn: () => unknown): void }, options: { cwd?: string; env?: Record<string, string | undefined> } = {}) {
  const out = join(await makeTempDir('startup-modules', t), 'modules.txt');
  const result = await runTsko(args, {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { ...options.env, NODE_OPTIONS: `--import=${hook}`, TSKO_TEST_MODULES_OUT: out },
    timeoutMs: 120_000,
  });
  assert.ok(existsSync(out), `the module hook wrote its list (tsko ${args.join(' ')} exited ${result.code}: ${result.stderr})`);
  return { result, ...classify(readFileSync(out, 'utf8').split('\n').filter(Boolean)) };
}

describe('what each command loads', () => {
  // Registering commands may load commander, the command files and their flag parsers; nothing of
  // the pipeline, the registry client, the targets or the dashboard.
  const REGISTRATION = /^src\/(cli\/[a-z-]+\.js|errors\.js|redact\.js|registry\/server\/address\.js)$/;
  it('tsko version answers from bin/tsko.js: no package and none of dist/ loads', async (t) => {
    const { result, packages, ours } = await modulesOf(['version'], t);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${manifest.version}\n`);
    assert.deepEqual([...packages], [], 'no package');
    assert.deepEqual(ours, [], 'none of tsko’s compiled modules');
  });

  for (const args of [['version', '--verbose'], ['--help'], ['build', '--help'], ['dev', '--help'], ['help', 'deploy'], ['registry', 'gc', '--help']]) {
    it(`tsko ${args.join(' ')} loads commander and the command files only`, async (t) => {
      const { result, packages, ours } = await modulesOf(args, t);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(packages.has('commander'), 'the hook saw the packages that were loaded');
      assert.ok(ours.includes('src/cli/main.js'), 'the hook saw tsko’s own modules');
      assert.deepEqual([...packages], ['commander'], 'no package but commander');
      assert.deepEqual(
        ours.filter((file) => !REGISTRATION.test(file) || /-action\.js$/.test(file)),
        [],
        'no module beyond command registration',
      );
    });
  }

  it('tsko build loads the pipeline but no dashboard, cloud client, watcher, execa or YAML parser', { timeout: 180_000 }, async (t) => {
    const { result, packages, ours } = await modulesOf(['build', '--push=false', './examples/hello'], t, {
      cwd: repoRoot,
      env: { XDG_CACHE_HOME: await makeTempDir('startup-cache', t), GOCACHE: goCacheDir(), KO_DOCKER_REPO: undefined },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(ours.includes('src/publish/pipeline.js') && ours.includes('src/go/toolchain.js'), 'the hook saw the build itself');
    assert.ok(packages.has('tar-stream'), 'and the packages it uses');
    for (const name of [...DASHBOARD_AND_CLOUDS, 'chokidar', 'execa', 'yaml']) assert.ok(!packages.has(name), `${name} is not loaded`);
    // The dashboard's store and reducer (two small modules without imports) come with the reporters
    // map, so that a dashboard can subscribe before Ink has loaded; its components do not.
    assert.deepEqual(
      ours.filter((file) => /^(ui\/dashboard\/(?!store\.js$|state\.js$)|src\/deploy\/|src\/dev\/)/.test(file)),
      [],
      'nothing of the dashboard, the targets or the dev loop',
    );
  });
});

describe('tsko version', () => {
  it("prints package.json's version and exits 0", async () => {
    const result = await runTsko(['version'], { timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${manifest.version}\n`);
    assert.equal(result.stderr, '');
  });

  it('runs when its compile cache cannot be made: HOME under /proc, ~/.cache a dangling symlink', async (t) => {
    // Node's own recursive mkdir loops forever under /proc; bin/tsko.js must not call it there.
    const home = await makeTempDir('startup-home', t);
    await symlink(join(home, 'unmounted', 'cache'), join(home, '.cache'));
    for (const env of [{ HOME: '/proc/no-such-home', XDG_CACHE_HOME: undefined }, { HOME: home, XDG_CACHE_HOME: undefined }, { XDG_CACHE_HOME: '/proc/no-such-cache' }]) {
      const result = await runTsko(['version'], { env, timeoutMs: 20_000 });
      assert.equal(result.code, 0, `${JSON.stringify(env)}: ${result.stderr}`);
      assert.equal(result.stdout, `${manifest.version}\n`);
    }
  });

  it('takes -v like every command', async () => {
    const result = await runTsko(['-v', 'version'], { timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${manifest.version}\n`);
  });
});

/** A node on this machine older than `engines` asks for (Debian's Node 20), if there is one. */
function oldNode(): { path: string; version: string } | undefined {
  const minimum = Number(/(\d+)/.exec(manifest.engines.node)?.[1]);
  for (const candidate of ['/usr/bin/node', findOnPath('node', process.env.PATH)]) {
    if (!candidate || !existsSync(candidate)) continue;
    const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
    if (Number(/^v(\d+)/.exec(version)?.[1]) < minimum) return { path: candidate, version };
  }
  return undefined;
}

describe('under a Node older than engines', () => {
  const old = oldNode();
  it(
    'every command prints one line naming the Node tsko needs and exits 1',
    { skip: old ? false : `no node older than ${manifest.engines.node} on this machine (Debian's is /usr/bin/node)` },
    async () => {
      const { path, version } = old as { path: string; version: string };
      const wanted = /(\d+(?:\.\d+)*)/.exec(manifest.engines.node)?.[1];
      // Every command (and its alias, a subcommand, help, -v, a typo): the check runs before any of them.
      const commands = [
        ['--help'], ['version'], ['build', './examples/hello'], ['publish', '.'], ['resolve', '-f', 'x.yaml'], ['apply', '-f', 'x.yaml'], ['create', '-f', 'x.yaml'],
        ['delete', 'pod', 'x'], ['run', './examples/hello'], ['dev'], ['deploy', './examples/hello'], ['registry', 'serve'], ['registry', 'gc'],
        ['login', 'example.com'], ['logout'], ['help', 'build'], ['-v', 'build', '.'], ['no-such-command'],
      ];
      for (const args of commands) {
        const result = await execa(path, [tskoBin, ...args], { cwd: repoRoot, reject: false, timeout: 30_000, stdin: 'ignore' });
        assert.equal(result.stderr, `tsko: needs Node.js ≥ ${wanted}, this is ${version}`, `tsko ${args.join(' ')} under ${version}`);
        assert.equal(result.stdout, '');
        assert.equal(result.exitCode, 1);
      }
    },
  );

  it('bin/tsko.js keeps to syntax an old Node parses', () => {
    // Node 14 parses ES2020 modules: no top-level await, logical assignment or class fields. (?? and
    // ?. are ES2020, but Node 12 would choke on them, and they cost nothing to avoid.) Comments and
    // strings are dropped first so the file may talk about them.
    const code = readFileSync(tskoBin, 'utf8')
      .replace(/\/\/[^\n]*/g, '')
      .replace(/'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`/g, "''");
    for (const [what, pattern] of [
      ['top-level await', /\bawait\b/],
      ['??', /\?\?/],
      ['?.', /\?\.(?!\d)/],
      ['logical assignment', /(\|\||&&|\?\?)=/],
      ['a private name', /#[A-Za-z_]/],
    ] as const) {
      assert.doesNotMatch(code, pattern, `bin/tsko.js uses ${what}`);
    }
  });
});

describe('tsko dev when the process that started it dies', () => {
  it('stops itself and its revision, one process, after its parent is killed with SIGKILL', { timeout: 240_000 }, async (t) => {
    const dir = await makeTempDir('startup-dev', t);
    await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
    await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
    const modules = join(await makeTempDir('startup-modules', t), 'modules.txt');
    const port = await freePort();
    const env: Record<string, string> = {};
    const overrides = {
      XDG_CACHE_HOME: await makeTempDir('startup-dev-cache', t),
      GOCACHE: goCacheDir(),
      TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`,
      TSKO_TEST_MODULES_OUT: modules,
      KO_DOCKER_REPO: undefined,
      MALLOC_ARENA_MAX: undefined,
    };
    for (const [key, value] of Object.entries({ ...process.env, ...overrides })) if (value !== undefined) env[key] = value;
    // A shell stands in for npx or an IDE: it starts tsko dev, says its pid, and waits.
    const parent = spawn('/bin/sh', ['-c', '"$@" & echo "$!"; wait', 'sh', node, '--import', hook, tskoBin, 'dev', '--json', '--port', String(port)], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tskoPid: number | undefined;
    let started: number[] = [];
    t.after(() => {
      // On a failure, nothing is left running: the shell, tsko and the revision it started.
      if (parent.exitCode === null && parent.signalCode === null) parent.kill('SIGKILL');
      for (const pid of [...(tskoPid !== undefined ? [tskoPid, ...descendants(tskoPid)] : []), ...started]) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    });
    const lines: string[] = [];
    let buffer = '';
    let stderr = '';
    parent.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      lines.push(...parts.filter((line) => line.trim()));
    });
    parent.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const waitUntil = async <T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < timeoutMs / 50; i++) {
        const found = check();
        if (found !== undefined) return found;
        if (Date.now() > deadline) break;
        await sleep(50);
      }
      throw new Error(`${what}: not within ${timeoutMs} ms\nstdout:\n${lines.join('\n')}\nstderr:\n${stderr}`);
    };

    tskoPid = await waitUntil('the pid of tsko dev', () => (lines[0] && /^\d+$/.test(lines[0]) ? Number(lines[0]) : undefined), 10_000);
    const deployed = await waitUntil(
      'the first iteration deployed',
      () =>
        lines
          .slice(1)
          .map((line) => JSON.parse(line) as TskoEvent)
          .find((event) => event.type === 'iteration.end' && event.result === 'deployed'),
      180_000,
    );
    assert.ok(deployed);
    assert.equal((await httpGet(`http://127.0.0.1:${port}/`)).body, 'hello v1\n');
    started = descendants(tskoPid);
    assert.ok(started.length >= 1, 'the revision runs');
    const cmdline = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        return '';
      }
    };
    assert.deepEqual(
      started.filter((pid) => cmdline(pid).includes('bin/tsko.js')),
      [],
      'one tsko process: no re-executed copy of itself below it',
    );
    // The pid the shell started is the daemon, replaced once in place (execve) with the memory
    // settings bin/tsko.js gives `dev`.
    assert.match(cmdline(tskoPid), /--max-semi-space-size=1 .*bin\/tsko\.js dev/, 'tsko dev runs with a 1 MB V8 semi-space');
    assert.ok(readFileSync(`/proc/${tskoPid}/environ`, 'utf8').split('\0').includes('MALLOC_ARENA_MAX=2'), 'tsko dev runs with two malloc arenas');

    parent.kill('SIGKILL');
    const pid = tskoPid;
    await waitUntil('tsko dev exiting after its parent died', () => (isAlive(pid) ? undefined : true), 8_000);
    await waitUntil('every process tsko dev started gone', () => (started.some(isAlive) ? undefined : true), 5_000);
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/`, 1000), 'the front port is closed');

    // It exited through its own shutdown (the hook's exit handler ran), and without a terminal it
    // never loaded the dashboard; it did load the watcher.
    const { packages } = classify(readFileSync(modules, 'utf8').split('\n').filter(Boolean));
    assert.ok(packages.has('chokidar'), 'the hook saw the dev loop');
    for (const name of DASHBOARD_AND_CLOUDS) assert.ok(!packages.has(name), `${name} is not loaded`);
  });
});
