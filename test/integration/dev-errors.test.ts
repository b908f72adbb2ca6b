// `tsko dev` under bad input (issue 4): a dir that is not a main package, a busy front port, a
// go.mod that breaks mid-run, a package dir deleted and re-created, revisions that exit at once or
// never listen, and a save storm. The daemon keeps running and the last good revision keeps
// serving through each of them.
import assert from 'node:assert/strict';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { startDev, type DevProcess } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { runTsko } from '../support/tsko-cli.js';

type End = EventOf<'iteration.end'>;
const isEnd = (event: TskoEvent): event is End => event.type === 'iteration.end';

const MAIN = (body: string) => `package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/svc/internal/greet"
)

func main() {
	${body}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, greet.Text) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`;
const GREET = (text: string) => `package greet\n\nconst Text = ${JSON.stringify(text)}\n`;
const GO_MOD = 'module example.com/svc\n\ngo 1.22\n';

async function service(t: TestContext): Promise<string> {
  const dir = await makeTempDir('dev-svc', t);
  await mkdir(join(dir, 'internal', 'greet'), { recursive: true });
  await writeFile(join(dir, 'go.mod'), GO_MOD);
  await writeFile(join(dir, 'main.go'), MAIN(''));
  await writeFile(join(dir, 'internal', 'greet', 'greet.go'), GREET('one'));
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  return dir;
}

async function env(t: TestContext): Promise<Record<string, string | undefined>> {
  return { XDG_CACHE_HOME: await makeTempDir('dev-err-cache', t), GOCACHE: goCacheDir(), TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`, KO_DOCKER_REPO: undefined };
}

/**
 * Saves the way careful editors do (write a temp file, rename it over the old one), so the loop
 * sees each save as one event and never builds a half-written file in these tests (a truncate
 * then write is handled too, but may show a short-lived failed build in between).
 */
async function save(path: string, text: string): Promise<void> {
  const temp = `${path}.tsko-test-tmp`;
  await writeFile(temp, text);
  await rename(temp, path);
}

function settled(dev: DevProcess, from: number): Promise<End> {
  return dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from }) as Promise<End>;
}

describe('tsko dev bad input', () => {
  it('refuses a directory that is not a main package, with one line', async (t) => {
    const dir = await makeTempDir('dev-lib', t);
    await writeFile(join(dir, 'go.mod'), 'module example.com/lib\n\ngo 1.22\n');
    await writeFile(join(dir, 'lib.go'), 'package lib\n');
    const result = await runTsko(['dev', '--port', String(await freePort())], { cwd: dir, env: await env(t), timeoutMs: 30_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /^tsko: "\." \(example\.com\/lib\) is package lib, not a main package$/m);
  });

  it('names a busy front port', async (t) => {
    const dir = await service(t);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const result = await runTsko(['dev', '--port', String(port)], { cwd: dir, env: await env(t), timeoutMs: 30_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`^tsko: .*127\\.0\\.0\\.1:${port}.*in use`, 'm'));
  });

  it('survives a broken go.mod, a deleted and re-created package, crashing and silent revisions, and a save storm', async (t) => {
    const dir = await service(t);
    const port = await freePort();
    const dev = startDev(['--port', String(port), '--ready-timeout', '1500'], { cwd: dir, env: await env(t) });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const front = async () => (await httpGet(`http://127.0.0.1:${port}/`)).body;
    assert.equal((await settled(dev, 0)).result, 'deployed');
    assert.equal(await front(), 'one\n');

    // go.mod that does not parse: reported, old revision serves, a fix recovers.
    let mark = dev.events.length;
    await save(join(dir, 'go.mod'), 'module example.com/svc\n\ngo 1.22\nrequire (\n');
    const broken = await settled(dev, mark);
    assert.equal(broken.result, 'build-failed');
    assert.match(broken.error?.message ?? '', /go\.mod/);
    assert.equal(await front(), 'one\n');
    mark = dev.events.length;
    await save(join(dir, 'go.mod'), GO_MOD);
    await save(join(dir, 'internal', 'greet', 'greet.go'), GREET('two'));
    assert.equal((await settled(dev, mark)).result, 'deployed');
    assert.equal(await front(), 'two\n');

    // The imported package's dir deleted (build fails), then re-created with new text.
    mark = dev.events.length;
    await rm(join(dir, 'internal', 'greet'), { recursive: true });
    assert.equal((await settled(dev, mark)).result, 'build-failed');
    assert.equal(await front(), 'two\n');
    mark = dev.events.length;
    await mkdir(join(dir, 'internal', 'greet'));
    await save(join(dir, 'internal', 'greet', 'greet.go'), GREET('three'));
    assert.equal((await settled(dev, mark)).result, 'deployed');
    assert.equal(await front(), 'three\n');

    // A revision that exits at once is not switched to; its logs say why.
    mark = dev.events.length;
    await save(join(dir, 'main.go'), MAIN('fmt.Fprintln(os.Stderr, "boom"); os.Exit(3)'));
    const crashed = await settled(dev, mark);
    assert.equal(crashed.result, 'deploy-failed');
    assert.match(crashed.error?.message ?? '', /exit/i);
    assert.match(`${crashed.error?.detail ?? ''}`, /boom/);
    assert.equal(await front(), 'three\n');

    // A revision that never listens on PORT times out and is not switched to.
    mark = dev.events.length;
    await save(join(dir, 'main.go'), MAIN('select {}'));
    const silent = await settled(dev, mark);
    assert.equal(silent.result, 'deploy-failed');
    assert.match(silent.error?.message ?? '', /PORT|answer|ready/i);
    assert.equal(await front(), 'three\n');

    // A save storm (a checkout of many files in quick succession) gives one or two builds.
    await save(join(dir, 'main.go'), MAIN(''));
    mark = dev.events.length;
    for (let i = 0; i < 200; i++) await writeFile(join(dir, 'internal', 'greet', 'greet.go'), GREET(`storm ${i}`));
    const stormEnd = await dev.waitFor((e) => isEnd(e) && e.result === 'deployed', { from: mark });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = dev.events.slice(mark).filter((e) => e.type === 'iteration.start').length;
    assert.ok(started <= 3, `a storm of 200 saves started ${started} iterations`);
    assert.ok(stormEnd.iteration !== undefined);
    assert.equal(await front(), 'storm 199\n');

    dev.child.kill('SIGTERM');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });
});
