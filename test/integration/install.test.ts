// tsko in someone else's project (issue 15, "Install and start"): tsko packed the way npm
// publishes it (`npm pack`, whose `prepare` builds dist/ in a copy of the checkout), installed as a
// devDependency into a Go module outside the checkout, and used there through `npx tsko` with a
// tsko.config.ts that imports `defineConfig` from 'tsko': `tsko build` to Debian's docker-registry,
// `tsko dev --json` until the first iteration serves; the config found from the module root and
// from a ./dir target; bad configs as one line; the offline-base hint before the compile; and
// README's Quick start line for a user's own project, run exactly as written.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { TskoEvent } from '../../src/events.js';
import { descendants, isAlive, startDev } from '../support/dev-process.js';
import { freePort, startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage, httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
/** The pinned Node 24 (and tsc) first, as the brief for this test asks; npm and npx come from the system. */
const PATH = `${join(repoRoot, 'node_modules/.bin')}:${process.env.PATH ?? ''}`;
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund'];

const MAIN_GO = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "shop api says hi")
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`;

const CONFIG_TS = `import { defineConfig } from 'tsko';

// No network base here: tsko's offline one.
const base: string = 'builtin://static';

export default defineConfig({
  defaultBaseImage: base,
});
`;

/** A Go module with its main package in cmd/api, as a user's service might be laid out. */
async function writeGoModule(dir: string, module: string): Promise<void> {
  await mkdir(join(dir, 'cmd', 'api'), { recursive: true });
  await writeFile(join(dir, 'go.mod'), `module ${module}\n\ngo 1.22\n`);
  await writeFile(join(dir, 'cmd', 'api', 'main.go'), MAIN_GO);
}

/** The checkout's files as git sees them (tracked, or new and not ignored), copied as a fresh clone would hold them. */
async function copyCheckout(to: string): Promise<void> {
  const listed = await execa('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot, stdin: 'ignore' });
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    // Deleted in the worktree and not yet committed; or a worktree's node_modules link (a link is
    // no directory to .gitignore's `node_modules/`): the copy gets its own below.
    if (!existsSync(join(repoRoot, file)) || file.split('/')[0] === 'node_modules') continue;
    await mkdir(dirname(join(to, file)), { recursive: true });
    await cp(join(repoRoot, file), join(to, file), { verbatimSymlinks: true });
  }
  // The clone's `npm install` (Quick start's first line): the shared node_modules stands in for it.
  await symlink(join(repoRoot, 'node_modules'), join(to, 'node_modules'));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(file: string, args: string[], cwd: string, env: Record<string, string | undefined>, timeoutMs = 180_000): Promise<Run> {
  const result = await execa(file, args, { cwd, env: childEnv({ PATH, ...env }), extendEnv: false, timeout: timeoutMs, reject: false, stdin: 'ignore', stripFinalNewline: false });
  if (result.timedOut) throw new Error(`${file} ${args.join(' ')} timed out after ${timeoutMs} ms\n${result.stderr}`);
  return { code: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function assertOneErrorLine(result: Run, pattern: RegExp, what: string): void {
  assert.equal(result.code, 1, `${what}: exit code (stderr: ${result.stderr})`);
  assert.equal(result.stdout, '', `${what}: nothing on stdout`);
  const lines = result.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0] ?? '', pattern, what);
}

/** Stops a process group started by a test (bounded), and says whether any of `pids` is left. */
async function stopGroup(pid: number, pids: number[]): Promise<number[]> {
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
  for (let i = 0; i < 50 && pids.some(isAlive); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  return pids.filter(isAlive);
}

describe('tsko installed into a Go module outside the checkout', { timeout: 900_000 }, () => {
  let work: string;
  let tarball: string;
  let project: string;
  let registry: DockerRegistry;
  /** What every tsko run here shares: its own cache, the developer's Go cache, no KO_* settings. */
  let env: Record<string, string | undefined>;
  /** `npm install --save-dev <tarball>` in the project. */
  let installed: Run;

  before(async () => {
    work = await makeTempDir('install');
    const clone = join(work, 'clone');
    await copyCheckout(clone);
    const packs = join(work, 'packs');
    await mkdir(packs);
    // `prepare` (tsc -p .) runs in the copy: the tarball's dist/ is built from these sources.
    const packed = await run('npm', ['pack', '--pack-destination', packs, ...NPM_FLAGS], clone, {}, 300_000);
    assert.equal(packed.code, 0, packed.stderr);
    const [name] = await readdir(packs);
    assert.equal(name, `tsko-${manifest.version}.tgz`);
    tarball = join(packs, name);

    registry = await startDockerRegistry();
    env = {
      XDG_CACHE_HOME: join(work, 'cache'),
      GOCACHE: goCacheDir(),
      TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`,
      KO_DOCKER_REPO: undefined,
      KO_DEFAULTBASEIMAGE: undefined,
      KO_CONFIG_PATH: undefined,
    };
    // Someone else's service: its own go.mod, no package.json yet, no tsko checkout above it.
    project = join(work, 'shop');
    await writeGoModule(project, 'example.com/shop');
    await writeFile(join(project, 'tsko.config.ts'), CONFIG_TS);
    // Installed once here, so each case below can run alone (--test-name-pattern).
    installed = await run('npm', ['install', '--save-dev', tarball, ...NPM_FLAGS], project, env, 300_000);
  });

  after(async () => {
    await registry?.stop();
  });

  it('packs bin/ and the built dist/ (library entry and types included, no tests) and installs from the tarball', async () => {
    const listing = await run('tar', ['-tzf', tarball], work, {});
    const files = new Set(listing.stdout.split('\n').filter(Boolean));
    for (const file of ['package/package.json', 'package/bin/tsko.js', 'package/dist/src/cli/main.js', 'package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/dist/src/config/define.d.ts', 'package/dist/ui/reporters.js', 'package/README.md']) {
      assert.ok(files.has(file), `${file} is in the tarball`);
    }
    assert.deepEqual([...files].filter((file) => /^package\/(dist\/test|dist\/bench|src|test|examples)\//.test(file)), [], 'no sources, tests or examples');

    assert.equal(installed.code, 0, installed.stderr);
    const pkg = join(project, 'node_modules', 'tsko');
    assert.ok(!lstatSync(pkg).isSymbolicLink(), 'a real install, not a link to the checkout');
    assert.equal((JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version, manifest.version);
    const projectManifest = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
    assert.ok(projectManifest.devDependencies?.tsko, 'saved as a devDependency');

    const version = await run('npx', ['tsko', 'version'], project, env);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `${manifest.version}\n`);
  });

  it('npx tsko build: the config imports defineConfig from tsko, the image goes to a real registry and serves', async (t) => {
    const built = await run('npx', ['tsko', 'build', './cmd/api'], project, { ...env, KO_DOCKER_REPO: `${registry.host}/shop` });
    assert.equal(built.code, 0, built.stderr);
    // No MODULE_TYPELESS_PACKAGE_JSON warning for the package.json npm made, no "Cannot find package".
    assert.doesNotMatch(built.stderr, /Warning|Cannot find package|tsko: /, built.stderr);
    assert.match(built.stderr, /Using base builtin:\/\/static@sha256:/, 'the base came from tsko.config.ts');
    const ref = built.stdout.trim();
    assert.match(ref, new RegExp(`^${registry.host.replace(/\./g, '\\.')}/shop/api-[0-9a-f]{32}@sha256:[0-9a-f]{64}$`));
    const checked = await checkImage(ref, { insecure: true, expectBody: 'shop api says hi\n', t });
    assert.equal(checked.body, 'shop api says hi\n');
  });

  it('finds tsko.config.ts from the module root when run in a package dir, and from a ./dir target run elsewhere', async (t) => {
    const fromPackage = await run('npx', ['tsko', 'build', '--push=false', '.'], join(project, 'cmd', 'api'), env);
    assert.equal(fromPackage.code, 0, fromPackage.stderr);
    assert.match(fromPackage.stderr, /Using base builtin:\/\/static@/, 'found two levels up, at the module root');

    const elsewhere = await makeTempDir('install-elsewhere', t);
    const bin = join(project, 'node_modules', '.bin', 'tsko');
    const fromOutside = await run(bin, ['build', '--push=false', join(project, 'cmd', 'api')], elsewhere, env);
    assert.equal(fromOutside.code, 0, fromOutside.stderr);
    assert.match(fromOutside.stderr, /Using base builtin:\/\/static@/, "found from the target's directory");
  });

  it('npx tsko dev --json serves the first iteration, and SIGTERM stops it and its revision', async () => {
    const port = await freePort();
    const dev = startDev(['--port', String(port), './cmd/api'], { cwd: project, env: { ...env, PATH }, command: { file: 'npx', args: ['tsko'] } });
    try {
      const end = (await dev.waitFor((event) => event.type === 'iteration.end', { timeoutMs: 180_000 })) as Extract<TskoEvent, { type: 'iteration.end' }>;
      assert.equal(end.result, 'deployed', JSON.stringify(end));
      const answer = await httpGet(`http://127.0.0.1:${port}/`);
      assert.deepEqual(answer, { status: 200, body: 'shop api says hi\n' });
      const pids = [dev.child.pid as number, ...descendants(dev.child.pid as number)];
      assert.ok(pids.length >= 3, `npx, tsko and the revision run (${pids.join(', ')})`);
      dev.child.kill('SIGTERM');
      const code = await dev.exited(10_000);
      assert.notEqual(code, 'timeout', 'npx exits after SIGTERM');
      for (let i = 0; i < 50 && pids.some(isAlive); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(pids.filter(isAlive), [], 'no tsko and no revision left');
      await assert.rejects(httpGet(`http://127.0.0.1:${port}/`, 1_000), 'the front port is freed');
    } finally {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    }
  });

  it('an unknown key (dev included) or a syntax error in the config is one line naming the key path or file:line:col, exit 1', async () => {
    await writeFile(join(project, 'typo.config.ts'), "import { defineConfig } from 'tsko';\n\nexport default defineConfig({ defaultBaseImage: 'builtin://static', dev: { prot: 9000 } });\n");
    assertOneErrorLine(await run('npx', ['tsko', 'dev', '--config', 'typo.config.ts'], project, env), /^tsko: typo\.config\.ts: dev\.prot is not a known key: did you mean port\?$/, 'dev.prot');
    assertOneErrorLine(await run('npx', ['tsko', 'build', '--config', 'typo.config.ts', './cmd/api'], project, env), /^tsko: typo\.config\.ts: dev\.prot is not a known key: did you mean port\?$/, 'build reads dev too');

    await writeFile(join(project, 'broken.config.ts'), "import { defineConfig } from 'tsko';\n\nexport default defineConfig({\n  defaultBaseImage: 'builtin://static',\n  dev: { port: 9000 ),\n});\n");
    assertOneErrorLine(await run('npx', ['tsko', 'build', '--config', 'broken.config.ts', './cmd/api'], project, env), /^tsko: broken\.config\.ts:5:\d+: syntax error: .+$/, 'syntax error');
  });

  it('with no config and no network, the first iteration stops before the compile ends, offering builtin://static', async (t) => {
    const reachable = await lookup('cgr.dev').then(
      () => true,
      () => false,
    );
    if (reachable) {
      t.skip('cgr.dev resolves on this machine: there is network for the default base');
      return;
    }
    // A second module, no config anywhere above it, tsko from the first one's install.
    const bare = join(await makeTempDir('install-bare', t), 'bare');
    await writeGoModule(bare, 'example.com/bare');
    const bin = join(project, 'node_modules', 'tsko', 'bin', 'tsko.js');
    // An empty Go cache: the compile takes seconds, the base's failure milliseconds.
    const coldEnv = { ...env, GOCACHE: await makeTempDir('install-cold-go', t) };

    const built = await run(process.execPath, [bin, 'build', './cmd/api'], bare, coldEnv);
    assert.equal(built.code, 1, built.stderr);
    assert.match(built.stderr, /^tsko: cannot resolve base image cgr\.dev\/chainguard\/static:latest: cannot reach cgr\.dev/m);
    assert.match(built.stderr, /^hint: no tsko\.config\.ts here, .*defaultBaseImage: 'builtin:\/\/static'.*KO_DEFAULTBASEIMAGE=builtin:\/\/static/m);

    const dev = startDev(['--port', String(await freePort()), './cmd/api'], { cwd: bare, env: { ...coldEnv, PATH }, command: { file: process.execPath, args: [bin] } });
    try {
      const end = (await dev.waitFor((event) => event.type === 'iteration.end', { timeoutMs: 120_000 })) as Extract<TskoEvent, { type: 'iteration.end' }>;
      assert.equal(end.result, 'build-failed');
      assert.equal(end.error?.code, 'BASE_IMAGE');
      assert.match(end.error?.message ?? '', /cgr\.dev\/chainguard\/static:latest/);
      assert.match(end.error?.hint ?? '', /create tsko\.config\.ts with `export default \{ defaultBaseImage: 'builtin:\/\/static' \}` \(or run with KO_DEFAULTBASEIMAGE=builtin:\/\/static\)/);
      const first = dev.events.filter((event) => 'iteration' in event && event.iteration === 1);
      assert.ok(!first.some((event) => event.type === 'go.build'), 'the compile did not finish first: it was stopped');
      const buildEnd = first.find((event) => event.type === 'stage.end' && event.stage === 'build');
      assert.ok(buildEnd && buildEnd.type === 'stage.end' && !buildEnd.ok && !buildEnd.cancelled, `the build stage failed, for the base: ${JSON.stringify(buildEnd)}`);
    } finally {
      dev.child.kill('SIGTERM');
      await dev.exited(10_000);
    }

    // Plain lines (no terminal, no --json) carry the same hint.
    const plain = spawn(process.execPath, [bin, 'dev', '--port', String(await freePort()), './cmd/api'], { cwd: bare, env: childEnv({ ...coldEnv, PATH }), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    plain.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    plain.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      for (let i = 0; i < 240 && !/build-failed/.test(output) && plain.exitCode === null; i++) await new Promise((resolve) => setTimeout(resolve, 250));
      assert.match(output, /build-failed in .*cgr\.dev\/chainguard\/static:latest.*\n {2}hint: no tsko\.config\.ts here, .*KO_DEFAULTBASEIMAGE=builtin:\/\/static\)?$/m, output);
    } finally {
      plain.kill('SIGTERM');
    }

    // A config without a base: the hint says where to set it.
    await writeFile(join(bare, 'tsko.config.ts'), "import { defineConfig } from 'tsko';\n\nexport default defineConfig({});\n");
    const configured = await run(process.execPath, [bin, 'build', './cmd/api'], bare, coldEnv);
    assert.equal(configured.code, 1, configured.stderr);
    assert.match(configured.stderr, /^hint: no base is configured, .*set defaultBaseImage: 'builtin:\/\/static' in tsko\.config\.ts \(or run with KO_DEFAULTBASEIMAGE=builtin:\/\/static\)$/m);
  });

  it("a global install (npm i -g) loads a project's tsko.config.ts that imports 'tsko', with no tsko in the project", async (t) => {
    const prefix = await makeTempDir('install-global', t);
    const global = await run('npm', ['install', '-g', '--prefix', prefix, tarball, ...NPM_FLAGS], work, env, 300_000);
    assert.equal(global.code, 0, global.stderr);
    const plain = join(await makeTempDir('install-global-project', t), 'svc');
    await writeGoModule(plain, 'example.com/svc');
    await writeFile(join(plain, 'tsko.config.ts'), CONFIG_TS);
    const result = await run(join(prefix, 'bin', 'tsko'), ['build', '--push=false', './cmd/api'], plain, env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Using base builtin:\/\/static@/);
    assert.doesNotMatch(result.stderr, /Warning|Cannot find package/);
  });

  it("runs a tsko.config.ts that imports 'tsko' with the checkout's own bin in a module that has no tsko installed", async (t) => {
    const plain = join(await makeTempDir('install-plain', t), 'plain');
    await writeGoModule(plain, 'example.com/plain');
    await writeFile(join(plain, 'tsko.config.ts'), CONFIG_TS);
    const result = await run(process.execPath, [join(repoRoot, 'bin', 'tsko.js'), 'build', '--push=false', './cmd/api'], plain, env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Using base builtin:\/\/static@/);
    assert.doesNotMatch(result.stderr, /Warning|Cannot find package/);
  });

  it("README's Quick start line for a user's own project works as written", async (t) => {
    const line = quickStartLines()[2];
    assert.ok(line, "README's Quick start has a third line");
    const MODULE = '/path/to/your/module';
    const CLONE = '/path/to/tsko';
    assert.ok(line.includes(MODULE) && line.includes(CLONE), `the line names ${MODULE} and ${CLONE}: ${line}`);
    const mine = join(await makeTempDir('install-quickstart', t), 'mine');
    await writeGoModule(mine, 'example.com/mine');
    await writeFile(join(mine, 'main.go'), MAIN_GO);
    // The project's own config: the offline base (no network here) and a free port (8080 may be taken).
    const port = await freePort();
    await writeFile(join(mine, 'tsko.config.ts'), `import { defineConfig } from 'tsko';\n\nexport default defineConfig({ defaultBaseImage: 'builtin://static', dev: { port: ${port} } });\n`);
    const command = line.replaceAll(MODULE, mine).replaceAll(CLONE, repoRoot);
    const child = spawn('bash', ['-c', command], { cwd: work, env: childEnv({ ...env, PATH }), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      let answer: { status: number; body: string } | undefined;
      // Bounded: npm install (a link), then the first iteration; 240 tries, 0.5 s apart.
      // Until then the front port answers 503 (no revision yet).
      for (let i = 0; i < 240 && answer?.status !== 200 && child.exitCode === null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        answer = await httpGet(`http://127.0.0.1:${port}/`, 1_000).catch(() => undefined);
      }
      assert.deepEqual(answer, { status: 200, body: 'shop api says hi\n' }, `the line served the module's main package; output:\n${output}`);
    } finally {
      const left = await stopGroup(child.pid as number, [child.pid as number, ...descendants(child.pid as number)]);
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      assert.deepEqual(left, [], 'SIGTERM stopped everything the line started');
    }
  });
});

/** The shell lines of README's Quick start, in order (each a ```sh block of one line). */
function quickStartLines(): string[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = /^## Quick start\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
  return [...section.matchAll(/```sh\n([^\n]+)\n```/g)].map((match) => match[1] ?? '');
}

function childEnv(overrides: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...overrides })) if (value !== undefined) out[key] = value;
  return out;
}
