// `tsko build` with no KO_DOCKER_REPO pushes to the embedded registry: started in-process when
// nothing serves its address, reused when a `tsko registry serve` does, storage kept between runs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage, skopeoInspect } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko } from '../support/tsko-cli.js';

describe('tsko build to the embedded registry', () => {
  it('starts one in-process when KO_DOCKER_REPO is unset, and the image is readable afterwards', async (t) => {
    const cacheHome = await makeTempDir('embedded-cache', t);
    const addr = `127.0.0.1:${await freePort()}`;
    const env = { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DOCKER_REPO: undefined, TSKO_REGISTRY_ADDR: addr };
    const first = await runTsko(['build', './examples/hello'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`Started the embedded registry at ${addr.replace(/\./g, '\\.')}`));
    const ref = first.stdout.trim();
    assert.match(ref, new RegExp(`^${addr.replace(/\./g, '\\.')}/hello-[a-f0-9]{32}@sha256:[a-f0-9]{64}$`));

    // The in-process registry stopped with the command; a `tsko registry serve` on the same root
    // serves what was pushed, and the next build uses that server instead of starting one.
    const server = spawn(join(repoRoot, 'node_modules/.bin/node'), [join(repoRoot, 'bin/tsko.js'), 'registry', 'serve', '--addr', addr], {
      env: { ...process.env, XDG_CACHE_HOME: cacheHome },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    t.after(() => {
      server.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('registry serve did not start within 10 s')), 10_000);
      server.stderr.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('serving')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const inspected = (await skopeoInspect(ref, { insecure: true, raw: true })) as { layers: unknown[] };
    assert.equal(inspected.layers.length, 3);

    const second = await runTsko(['build', './examples/hello'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /Using the embedded registry/);
    assert.match(second.stderr, /uploaded 0 blobs/);
    assert.equal(second.stdout.trim(), ref);
    await checkImage(ref, { insecure: true, expectBody: 'hello v1\n', t });
  });
});
