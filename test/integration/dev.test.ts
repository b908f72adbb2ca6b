// `tsko dev` end to end (issue 4's "done when"): a copy of examples/hello, the real CLI with
// --json, edits on disk, and HTTP on the front port. Good edits serve their text, a compile error
// keeps the old text serving, a comment-only edit pushes nothing, a save during a build cancels
// it, and Ctrl-C leaves no process behind.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { descendants, isAlive, startDev } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage, httpGet } from '../support/image-check.js';
import * as tar from 'tar-stream';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

type End = EventOf<'iteration.end'>;
const isEnd = (event: TskoEvent): event is End => event.type === 'iteration.end';

describe('tsko dev on a copy of examples/hello', () => {
  it('redeploys good edits, survives a compile error, skips a comment-only edit, cancels a superseded build, and stops cleanly', async (t) => {
    const dir = await makeTempDir('dev-hello', t);
    await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
    await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
    const main = join(dir, 'main.go');
    const original = await readFile(main, 'utf8');
    const save = (text: string) => writeFile(main, text);
    const port = await freePort();
    const registryAddr = `127.0.0.1:${await freePort()}`;
    const dev = startDev(['--port', String(port)], {
      cwd: dir,
      env: {
        XDG_CACHE_HOME: await makeTempDir('dev-cache', t),
        GOCACHE: goCacheDir(),
        TSKO_REGISTRY_ADDR: registryAddr,
        KO_DOCKER_REPO: undefined,
      },
    });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const front = async () => (await httpGet(`http://127.0.0.1:${port}/`)).body;
    // One save can reach the watcher as two events (truncate, then write) far enough apart on a
    // loaded machine to start two iterations; the first is then cancelled by the second. What a
    // save leads to is the first iteration after it that was not cancelled.
    const nextEnd = (from: number) => dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from }) as Promise<End>;

    // 1. The first iteration deploys v1.
    const first = await nextEnd(0);
    assert.equal(first.result, 'deployed', JSON.stringify(first));
    assert.equal(await front(), 'hello v1\n');
    // With the registry on this machine the app layers go up as plain tar; the image is still one
    // that skopeo, umoci and the entrypoint accept.
    const checked = await checkImage(first.reference as string, { insecure: true, expectBody: 'hello v1\n', t });
    const layers = (checked.manifest as { layers: Array<{ mediaType: string }> }).layers.map((l) => l.mediaType);
    assert.deepEqual(layers.slice(-2), ['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar']);

    // 2. A good edit serves its new text.
    let mark = dev.events.length;
    await save(original.replace('hello v1', 'hello v2'));
    const second = await nextEnd(mark);
    assert.equal(second.result, 'deployed', JSON.stringify(second));
    assert.equal(await front(), 'hello v2\n');
    assert.ok((second.bytesPushed ?? 0) > 0);
    const secondTrigger = dev.events.slice(mark).find((e) => e.type === 'iteration.start');
    assert.deepEqual(secondTrigger?.type === 'iteration.start' && secondTrigger.trigger, [main]);
    // The revision was started from the built binary (linked, not extracted from the pushed
    // layer), so check that what it runs is byte for byte what the registry holds for the image.
    const running = revisionExecutable(dev.child.pid as number, second.revision as string);
    const pushed = await pushedBinary(registryAddr, second.reference as string, 'ko-app/hello');
    assert.equal(sha256(running), sha256(pushed), 'the revision runs the bytes the registry holds');
    assert.match(pushed.toString('latin1'), /hello v2/, 'the new build');

    // 3. A compile error is reported with file:line, and v2 keeps serving.
    mark = dev.events.length;
    await save(original.replace('hello v1', 'hello v2').replace('func main() {', 'func main() {\n\tundefinedCall()'));
    const broken = await nextEnd(mark);
    assert.equal(broken.result, 'build-failed');
    assert.match(broken.error?.message ?? '', /main\.go:\d+:\d+: undefined: undefinedCall/);
    assert.equal(await front(), 'hello v2\n');

    // 4. Fixing it back to what is deployed, then a comment-only edit: nothing pushed or deployed.
    mark = dev.events.length;
    await save(original.replace('hello v1', 'hello v2'));
    assert.equal((await nextEnd(mark)).result, 'unchanged');
    mark = dev.events.length;
    await save(original.replace('hello v1', 'hello v2').replace('// version is what the server answers with', '// version is the text the server answers'));
    const comment = await nextEnd(mark);
    assert.equal(comment.result, 'unchanged', JSON.stringify(comment));
    assert.equal(comment.bytesPushed ?? 0, 0);
    assert.equal(dev.events.slice(mark).filter((e) => e.type === 'published').length, 0, 'nothing published');
    assert.equal(await front(), 'hello v2\n');

    // 5. A save while a build runs cancels it; only the newest text is ever deployed.
    mark = dev.events.length;
    await save(original.replace('hello v1', 'hello v3'));
    const building = await dev.waitFor((e) => e.type === 'stage.start' && e.stage === 'build', { from: mark });
    await save(original.replace('hello v1', 'hello v4'));
    const finalEnd = await dev.waitFor((e) => isEnd(e) && e.result === 'deployed', { from: mark });
    const ends = dev.events.slice(mark).filter(isEnd);
    const cancelled = ends.find((e) => e.iteration === building.iteration);
    assert.equal(cancelled?.result, 'cancelled', `the superseded build is cancelled: ${JSON.stringify(ends)}`);
    assert.ok((finalEnd.iteration ?? 0) > (building.iteration ?? 0));
    assert.equal(await front(), 'hello v4\n');
    assert.equal(ends.filter((e) => e.result === 'deployed').length, 1, 'v3 was never deployed');

    // 6. Ctrl-C: exits within 2 s (bounded at 5 here), and every process it started is gone.
    const pid = dev.child.pid as number;
    const tree = descendants(pid);
    assert.ok(tree.length >= 1, 'a revision process is running');
    const stoppedAt = performance.now();
    dev.child.kill('SIGINT');
    const code = await dev.exited(5000);
    assert.notEqual(code, 'timeout', 'tsko dev exits after Ctrl-C');
    assert.ok(performance.now() - stoppedAt < 3000, 'within about 2 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const left = tree.filter(isAlive);
    assert.deepEqual(left, [], `no process left behind (was: ${tree.join(', ')})`);
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/`, 1000), 'the front port is closed');
  });
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The executable a running revision's process runs (through /proc, so even a replaced file is read as it ran). */
function revisionExecutable(devPid: number, revision: string): Buffer {
  for (const pid of descendants(devPid)) {
    let argv0: string;
    try {
      argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    } catch {
      continue;
    }
    if (argv0.includes(`/${revision}/`)) return readFileSync(`/proc/${pid}/exe`);
  }
  throw new Error(`no process of revision ${revision} under ${devPid}`);
}

/** A file of the image's top layer as the registry serves it, each blob checked against its digest. */
async function pushedBinary(registry: string, reference: string, file: string): Promise<Buffer> {
  const [name, digest] = reference.split('@') as [string, string];
  const repository = name.slice(registry.length + 1);
  const get = async (path: string, accept?: string) => {
    const res = await fetch(`http://${registry}/v2/${repository}/${path}`, accept ? { headers: { accept } } : {});
    assert.equal(res.status, 200, `GET ${path}`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(`sha256:${sha256(body)}`, path.split('/').pop(), `${path} holds the bytes its digest names`);
    return body;
  };
  const manifest = JSON.parse((await get(`manifests/${digest}`, 'application/vnd.oci.image.manifest.v1+json')).toString()) as { layers: Array<{ digest: string }> };
  const top = await get(`blobs/${manifest.layers.at(-1)?.digest}`);
  const extract = tar.extract();
  extract.end(top);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    if (entry.header.name === file) return Buffer.concat(chunks);
  }
  throw new Error(`${file} is not in the top layer of ${reference}`);
}
