// A config edit while `tsko dev` runs, through the real CLI: the iteration in flight is stopped
// and ends `cancelled` (its stage too), the old pipeline closes only after that, the service is
// resolved again, and the next iteration builds with the new config — here a `builds` entry whose
// ldflags set the text the service answers with. A config that does not load is one error event;
// the loop keeps running on the config that worked. Changed target settings (the front port) make
// a new target; one that cannot be made (the port is taken) is retried on the next reload.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
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
    // The front port comes from the config (a flag would win over it), so a config edit can move it.
    const port = await freePort();
    const base = `${BASE}, dev: { port: ${port} }`;
    await writeFile(config, `export default { ${base} };\n`);
    const dev = startDev([], { cwd: hello.dir, env: hello.env });
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
    await writeFile(config, `export default { ${base}, builds: [{ main: '.', ldflags: ['-X main.version=hello-from-builds'] }] };\n`);

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
    await writeFile(config, `export default { ${base}, builds: [{ main: '.', ldflags: 7 }] };\n`);
    const error = await dev.waitFor((e) => e.type === 'error', { from: mark, timeoutMs: 30_000 });
    assert.ok(error.type === 'error' && error.error.code === 'CONFIG_INVALID' && /builds\[0\]\.ldflags/.test(error.error.message), JSON.stringify(error));
    assert.equal(dev.events.slice(mark).filter((e) => e.type === 'iteration.start').length, 0, 'a broken config starts no iteration');
    assert.equal(await front(), 'hello-from-builds\n');

    // Fixed again, without the builds entry: no ldflags, so the source's own text is back.
    mark = dev.events.length;
    await writeFile(config, `export default { ${base} };\n`);
    const back = (await dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from: mark, timeoutMs: 120_000 })) as End;
    assert.equal(back.result, 'deployed', JSON.stringify(back));
    assert.equal(await front(), 'hello v1\n');

    // The target's settings change (another front port): a new target serves there, the old port closes.
    const moved = await freePort();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(moved, '127.0.0.1', resolve));
    t.after(() => void blocker.close());
    mark = dev.events.length;
    await writeFile(config, `export default { ${BASE}, dev: { port: ${moved} } };\n`);
    // The port is taken: the target cannot be made, said once, and each deploy fails with why.
    const taken = await dev.waitFor((e) => e.type === 'error' && e.service === 'hello', { from: mark, timeoutMs: 30_000 });
    assert.ok(taken.type === 'error' && /127\.0\.0\.1:\d+|in use|EADDRINUSE/.test(taken.error.message), JSON.stringify(taken));
    const refused = (await dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from: mark, timeoutMs: 60_000 })) as End;
    assert.equal(refused.result, 'deploy-failed', JSON.stringify(refused));
    // Freed, and the config saved again: the next reload makes the target it could not make before.
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    mark = dev.events.length;
    await writeFile(config, `export default { ${BASE}, dev: { port: ${moved} } }; // again\n`);
    const served = (await dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from: mark, timeoutMs: 120_000 })) as End;
    assert.equal(served.result, 'deployed', JSON.stringify(served));
    assert.equal(served.url, `http://127.0.0.1:${moved}`);
    assert.equal((await httpGet(`http://127.0.0.1:${moved}/`)).body, 'hello v1\n');
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/`), 'the old front port is closed');

    dev.child.kill('SIGINT');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });
});
