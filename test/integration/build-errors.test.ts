// Bad input to `tsko build`: each case gets one clear `tsko: …` line, a non-zero exit, nothing on
// stdout, and nothing half-pushed (no tag in the registry).
import assert from 'node:assert/strict';
import { cp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko, type TskoRunResult } from '../support/tsko-cli.js';

let registry: DockerRegistry;
let cacheHome: string;

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: `${registry.host}/errors`, ...extra };
}

async function goModule(files: Record<string, string>): Promise<string> {
  const dir = await makeTempDir('gomod');
  await writeFile(join(dir, 'go.mod'), 'module example.com/broken\n\ngo 1.22\n');
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

/** The failure contract: non-zero, empty stdout, a `tsko:` line matching `pattern`. */
function assertFails(result: TskoRunResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected failure, stderr:\n${result.stderr}`);
  assert.equal(result.stdout, '', 'nothing on stdout');
  const line = result.stderr.split('\n').find((l) => l.startsWith('tsko: '));
  assert.ok(line, `a "tsko: " line in stderr:\n${result.stderr}`);
  assert.match(line, pattern);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace without --verbose');
}

async function tagsOf(repository: string): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/${repository}/tags/list`);
  if (res.status === 404) return [];
  return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
}

async function fakeRegistry(handler: (status: { count: number }) => number): Promise<{ host: string; server: Server }> {
  const state = { count: 0 };
  const server = createServer((req, res) => {
    state.count += 1;
    const status = handler(state);
    res.writeHead(status, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end(status >= 400 ? JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `fake says ${status}` }] }) : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('tsko build bad input', () => {
  before(async () => {
    registry = await startDockerRegistry();
    cacheHome = await makeTempDir('errors-cache');
  });
  after(async () => {
    await registry?.stop();
  });

  it('a malformed KO_DOCKER_REPO', async () => {
    assertFails(await runTsko(['build', './examples/hello'], { env: env({ KO_DOCKER_REPO: 'http://Not A Repo' }) }), /KO_DOCKER_REPO="http:\/\/Not A Repo" is not a valid repository/);
  });

  it('an unknown import path', async () => {
    const result = await runTsko(['build', 'example.com/hello/nope'], { env: env(), cwd: join(repoRoot, 'examples/hello') });
    assertFails(result, /cannot load package "example.com\/hello\/nope"/);
  });

  it('a package that is not main', async () => {
    const dir = await goModule({ 'lib.go': 'package lib\n\nfunc X() int { return 1 }\n' });
    assertFails(await runTsko(['build', '.'], { env: env(), cwd: dir }), /example.com\/broken\) is package lib, not a main package/);
  });

  it('a compile error shows the compiler output and pushes nothing', async () => {
    const dir = await goModule({ 'main.go': 'package main\n\nfunc main() {\n\tundefinedThing()\n}\n' });
    // The offline base: ko's default cannot be reached here, and its failure stops the compile.
    const result = await runTsko(['build', '.', '-B'], { env: env({ KO_DEFAULTBASEIMAGE: 'builtin://static' }), cwd: dir });
    assertFails(result, /go build failed for example.com\/broken \(linux\/amd64\): \.\/main\.go:4:2: undefined: undefinedThing/);
    assert.match(result.stderr, /undefined: undefinedThing/);
    assert.deepEqual(await tagsOf('errors/broken'), []);
  });

  it('go missing', async () => {
    assertFails(await runTsko(['build', './examples/hello'], { env: env({ KO_GO_PATH: '/nonexistent/go' }) }), /the Go toolchain \("\/nonexistent\/go"\) was not found/);
  });

  it('an unreachable registry', async () => {
    const port = await freePort();
    const result = await runTsko(['build', './examples/hello'], { env: env({ KO_DOCKER_REPO: `127.0.0.1:${port}/x` }) });
    assertFails(result, new RegExp(`127\\.0\\.0\\.1:${port}`));
  });

  it('a registry that answers 401', async () => {
    const secured = await startDockerRegistry({ auth: 'htpasswd' });
    try {
      const result = await runTsko(['build', './examples/hello'], { env: env({ KO_DOCKER_REPO: `${secured.host}/x`, DOCKER_CONFIG: await makeTempDir('no-docker-config') }) });
      assertFails(result, new RegExp(`${secured.host.replace(/\./g, '\\.')}.*(auth|401|credentials)`, 'i'));
    } finally {
      await secured.stop();
    }
  });

  it('a registry that answers 404 to everything', async () => {
    const fake = await fakeRegistry(() => 404);
    try {
      assertFails(await runTsko(['build', './examples/hello'], { env: env({ KO_DOCKER_REPO: `${fake.host}/x` }) }), /404/);
    } finally {
      fake.server.close();
    }
  });

  it('a registry that answers 500 (after bounded retries)', async () => {
    const fake = await fakeRegistry(() => 500);
    try {
      const result = await runTsko(['build', './examples/hello'], { env: env({ KO_DOCKER_REPO: `${fake.host}/x` }) });
      assertFails(result, /500/);
    } finally {
      fake.server.close();
    }
  });

  it('a malformed config names the key path', async () => {
    const dir = await makeTempDir('bad-config');
    await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
    await writeFile(join(dir, 'tsko.config.ts'), "export default { builds: [{ dir: '.' }] };\n");
    assertFails(await runTsko(['build', '.'], { env: env(), cwd: dir }), /tsko\.config\.ts: builds\[0\]\.main is required/);
    await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImge: 'x' };\n");
    assertFails(await runTsko(['build', '.'], { env: env(), cwd: dir }), /defaultBaseImge is not a known key/);
  });

  it('a .ko.yaml that is not YAML', async () => {
    const dir = await makeTempDir('bad-yaml');
    await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
    await writeFile(join(dir, '.ko.yaml'), 'defaultBaseImage: [unclosed\n');
    assertFails(await runTsko(['build', '.'], { env: env(), cwd: dir }), /\.ko\.yaml:\d+:\d+: /);
  });

  it('a kodata symlink that escapes kodata/ is an error, and nothing is pushed', async () => {
    const dir = await makeTempDir('escaping-kodata');
    await cp(join(repoRoot, 'examples/with-kodata'), dir, { recursive: true });
    await symlink('/etc/hostname', join(dir, 'kodata', 'leak'));
    await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
    const result = await runTsko(['build', '.', '-B'], { env: env(), cwd: dir });
    assertFails(result, /kodata symlink .*leak points outside kodata\//);
    assert.deepEqual(await tagsOf('errors/with-kodata'), []);
  });

  it('an invalid --platform', async () => {
    assertFails(await runTsko(['build', './examples/hello', '--platform', 'linux/banana'], { env: env() }), /unknown platform "linux\/banana"/);
    assertFails(await runTsko(['build', './examples/hello', '--platform', 'linux'], { env: env() }), /invalid platform "linux"/);
  });
});
