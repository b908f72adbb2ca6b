// Two `tsko dev` sessions on one machine (issue 15): the second must not push to the first one's
// in-process registry, or every push of the second fails once the first exits. Each session
// serves its own embedded registry (the second on a free port, saying so in one line), over the
// same storage and the same caches, so the second keeps deploying after the first has gone.
import assert from 'node:assert/strict';
import { cp, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { startDev, type DevProcess } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

type End = EventOf<'iteration.end'>;
type Embedded = EventOf<'registry.embedded'>;
const isEnd = (event: TskoEvent): event is End => event.type === 'iteration.end';

async function hello(t: TestContext, prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix, t);
  await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  return dir;
}

function settled(dev: DevProcess, from: number): Promise<End> {
  return dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from }) as Promise<End>;
}

describe('two tsko dev sessions', () => {
  it('each serves its own registry over shared storage; the second keeps deploying after the first exits', { timeout: 240_000 }, async (t) => {
    // One machine's settings: one cache (registry storage, base cache, layer chains), one address.
    const registryAddr = `127.0.0.1:${await freePort()}`;
    const env = { XDG_CACHE_HOME: await makeTempDir('two-sessions-cache', t), GOCACHE: goCacheDir(), TSKO_REGISTRY_ADDR: registryAddr, KO_DOCKER_REPO: undefined };
    const [dirA, dirB] = [await hello(t, 'two-a'), await hello(t, 'two-b')];
    const [portA, portB] = [await freePort(), await freePort()];
    const a = startDev(['--port', String(portA)], { cwd: dirA, env });
    const b0 = { dev: undefined as DevProcess | undefined };
    t.after(() => {
      for (const dev of [a, b0.dev]) if (dev && dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    assert.equal((await settled(a, 0)).result, 'deployed');
    const registryA = (await a.waitFor((e) => e.type === 'registry.embedded')) as Embedded;
    assert.equal(registryA.address, registryAddr);
    assert.equal(registryA.started, true);

    const b = startDev(['--port', String(portB)], { cwd: dirB, env });
    b0.dev = b;
    const firstB = await settled(b, 0);
    assert.equal(firstB.result, 'deployed', JSON.stringify(firstB));
    const registryB = (await b.waitFor((e) => e.type === 'registry.embedded')) as Embedded;
    assert.equal(registryB.started, true, 'the second session serves its own registry');
    assert.notEqual(registryB.address, registryAddr);
    assert.equal(registryB.root, registryA.root, 'over the same storage');
    assert.ok(firstB.reference?.startsWith(`${registryB.address}/`), firstB.reference);
    const said = b.events.filter((e) => e.type === 'log' && e.message.includes(registryAddr));
    assert.deepEqual(
      said.map((e) => e.type === 'log' && e.message),
      [`${registryAddr} is another tsko's registry, which stops with it: this session serves its own at ${registryB.address} (same storage)`],
    );

    // The first session exits; the second's next save pushes and deploys as before.
    a.child.kill('SIGTERM');
    assert.notEqual(await a.exited(5000), 'timeout');
    const main = join(dirB, 'main.go');
    const mark = b.events.length;
    await writeFile(`${main}.tmp`, (await readFile(main, 'utf8')).replace('hello v1', 'hello after a'));
    await rename(`${main}.tmp`, main);
    const after = await settled(b, mark);
    assert.equal(after.result, 'deployed', JSON.stringify(after));
    assert.ok((after.blobsPushed ?? 0) > 0, 'the new binary was pushed');
    assert.equal((await httpGet(`http://127.0.0.1:${portB}/`)).body, 'hello after a\n');
    // Both sessions' images are in the one storage.
    const repositories = await readdir(join(registryA.root, 'repositories'));
    assert.ok(repositories.some((name) => name.startsWith('hello-')), repositories.join(', '));

    b.child.kill('SIGTERM');
    assert.notEqual(await b.exited(5000), 'timeout');
  });
});
