// A config edit while `tsko dev` runs, through the real CLI: the iteration in flight is stopped
// and ends `cancelled` (its stage too), the old pipeline closes only after that, the service is
// resolved again, and the next iteration builds with the new config — here a `builds` entry whose
// ldflags set the text the service answers with. A config that does not load is one error event;
// the loop keeps running on the config that worked.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { helloCopy } from '../support/deploy-fixture.js';
import { startDev } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { httpGet } from '../support/image-check.js';

type End = EventOf<'iteration.end'>;
const isEnd = (e: TskoEvent): e is End => e.type === 'iteration.end';

const BASE = "defaultBaseImage: 'builtin://static'";

describe('tsko dev when its config changes', () => {
  it('cancels the running iteration, then builds with the new config; a broken config is one error and changes nothing', async (t) => {
    const hello = await helloCopy('reload', t);
    const main = join(hello.dir, 'main.go');
    const config = join(hello.dir, 'tsko.config.ts');
    // A var (not a const), so -X can set it; and a way to make a revision slow to get ready.
    const source = (await readFile(main, 'utf8')).replace('const version = "hello v1"', 'var version = "hello v1"');
    const slowToListen = source.replace('import (\n', 'import (\n\t"time"\n').replace('\tlog.Printf("hello: listening', '\ttime.Sleep(4 * time.Second)\n\tlog.Printf("hello: listening');
    await writeFile(main, source);
    const port = await freePort();
    const dev = startDev(['--port', String(port)], { cwd: hello.dir, env: hello.env });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const front = async () => (await httpGet(`http://127.0.0.1:${port}/`)).body;

    const first = (await dev.waitFor(isEnd, { timeoutMs: 120_000 })) as End;
    assert.equal(first.result, 'deployed', JSON.stringify(first));
    assert.equal(await front(), 'hello v1\n');

    // An iteration whose revision takes 4 s to listen: the config changes while it waits to be ready.
    let mark = dev.events.length;
    await writeFile(main, slowToListen);
    const waiting = await dev.waitFor((e) => e.type === 'stage.start' && e.stage === 'ready', { from: mark, timeoutMs: 60_000 });
    const inFlight = waiting.iteration as number;
    await writeFile(config, `export default { ${BASE}, builds: [{ main: '.', ldflags: ['-X main.version=hello-from-builds'] }] };\n`);

    const cancelled = (await dev.waitFor((e) => isEnd(e) && e.iteration === inFlight, { from: mark, timeoutMs: 30_000 })) as End;
    assert.equal(cancelled.result, 'cancelled', JSON.stringify(cancelled));
    const readyEnd = dev.events.find((e) => e.type === 'stage.end' && e.iteration === inFlight && e.stage === 'ready');
    assert.ok(readyEnd?.type === 'stage.end' && !readyEnd.ok && readyEnd.cancelled === true, `the ready stage is cancelled: ${JSON.stringify(readyEnd)}`);
    const reloaded = await dev.waitFor((e) => e.type === 'log' && /^config reloaded from /.test(e.message), { from: mark, timeoutMs: 30_000 });
    assert.ok(dev.events.indexOf(reloaded) > dev.events.indexOf(cancelled), 'the config is applied only after the running iteration has ended');

    // The next iteration is the config change's, and it builds with the new `builds` entry.
    const next = (await dev.waitFor((e) => isEnd(e) && (e.iteration as number) > inFlight, { from: mark, timeoutMs: 120_000 })) as End;
    assert.equal(next.result, 'deployed', JSON.stringify(next));
    const trigger = dev.events.find((e): e is EventOf<'iteration.start'> => e.type === 'iteration.start' && e.iteration === next.iteration);
    assert.deepEqual(trigger?.trigger, [config]);
    assert.equal(await front(), 'hello-from-builds\n');

    // A config that does not load: one error event naming it; nothing is rebuilt; the service serves on.
    mark = dev.events.length;
    await writeFile(config, `export default { ${BASE}, builds: [{ main: '.', ldflags: 7 }] };\n`);
    const error = await dev.waitFor((e) => e.type === 'error', { from: mark, timeoutMs: 30_000 });
    assert.ok(error.type === 'error' && error.error.code === 'CONFIG_INVALID' && /builds\[0\]\.ldflags/.test(error.error.message), JSON.stringify(error));
    assert.equal(dev.events.slice(mark).filter((e) => e.type === 'iteration.start').length, 0, 'a broken config starts no iteration');
    assert.equal(await front(), 'hello-from-builds\n');

    // Fixed again, without the builds entry: no ldflags, so the source's own text is back.
    mark = dev.events.length;
    await writeFile(config, `export default { ${BASE} };\n`);
    const back = (await dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from: mark, timeoutMs: 120_000 })) as End;
    assert.equal(back.result, 'deployed', JSON.stringify(back));
    assert.equal(await front(), 'hello v1\n');

    dev.child.kill('SIGINT');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });
});
