// kill -9 during concurrent pushes, repeated: afterwards every stored blob's bytes hash to its
// name, every manifest record has its bytes, and no tag points at a manifest that isn't there.
// Bounded: ROUNDS rounds, each with a kill after at most KILL_MAX_MS and workers that stop at the
// kill (or after WORKER_MAX_OPS operations).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ALL_MANIFEST_TYPES, digestOf, makeImage, pushBlob, pushImage, rawRequest, tarLayer, tempDir } from '../fixtures/registry/images.js';

const ROUNDS = 8;
const WORKERS = 6;
const KILL_MIN_MS = 50;
const KILL_MAX_MS = 700;
const WORKER_MAX_OPS = 200;
const START_TIMEOUT_MS = 15_000;

const CHILD = join(import.meta.dirname, '..', 'fixtures', 'registry', 'crash-server.js');

function startChild(root: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [CHILD, root], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`registry child did not start within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve({ child, address: out.slice(0, nl).trim() });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry child exited early (${code})`));
    });
  });
}

/** Chunked upload in 3 PATCHes with Content-Range, then PUT. */
async function pushChunked(address: string, repository: string, bytes: Buffer): Promise<void> {
  const start = await rawRequest(address, 'POST', `/v2/${repository}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
  let location = String(start.headers.location);
  const step = Math.ceil(bytes.length / 3);
  for (let offset = 0; offset < bytes.length; offset += step) {
    const chunk = bytes.subarray(offset, offset + step);
    const res = await rawRequest(address, 'PATCH', location, { headers: { 'Content-Range': `${offset}-${offset + chunk.length - 1}` }, body: chunk });
    location = String(res.headers.location);
  }
  await rawRequest(address, 'PUT', `${location}?digest=${digestOf(bytes)}`);
}

/** Pushes until the server dies (any request error) or WORKER_MAX_OPS operations are done. */
async function worker(address: string, id: number, shared: Buffer): Promise<number> {
  let ops = 0;
  try {
    for (; ops < WORKER_MAX_OPS; ops++) {
      const repository = `crash/repo${id % 3}`;
      switch ((ops + id) % 5) {
        case 0:
          await pushBlob(address, repository, randomBytes(randomInt(1, 512 * 1024)));
          break;
        case 1:
          await rawRequest(address, 'POST', `/v2/${repository}/blobs/uploads/?digest=${digestOf(shared)}`, { body: shared });
          break;
        case 2:
          await pushChunked(address, repository, randomBytes(randomInt(3, 256 * 1024)));
          break;
        default:
          await pushImage(address, repository, await makeImage({ shared: [shared] }), `t${randomInt(0, 4)}`);
      }
    }
  } catch (err) {
    // The server was killed under us: exactly what this test is for. Anything else is a bug here.
    const code = (err as { code?: string }).code;
    if (!['ECONNRESET', 'ECONNREFUSED', 'EPIPE'].includes(code ?? '') && !/socket hang up/.test(String(err))) throw err;
  }
  return ops;
}

async function hashFile(path: string, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

async function walkRepositories(dir: string, prefix: string, out: Array<{ name: string; dir: string }>): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  if (entries.some((e) => e.startsWith('_'))) out.push({ name: prefix, dir });
  for (const entry of entries) if (!entry.startsWith('_')) await walkRepositories(join(dir, entry), prefix ? `${prefix}/${entry}` : entry, out);
}

test(`kill -9 during concurrent pushes (${ROUNDS} rounds) never leaves a corrupt blob or a dangling tag`, { timeout: 240_000 }, async (t) => {
  const root = await tempDir(t, 'crash');
  // A real gzipped layer (images built on it need its diff_id), shared by every image and pushed
  // concurrently by every worker.
  const shared = (await tarLayer({ 'base.bin': randomBytes(48 * 1024).toString('base64') })).gz;
  let totalOps = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const { child, address } = await startChild(root);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const workers = Array.from({ length: WORKERS }, (_, i) => worker(address, i, shared));
    await new Promise((resolve) => setTimeout(resolve, randomInt(KILL_MIN_MS, KILL_MAX_MS)));
    child.kill('SIGKILL');
    await exited;
    totalOps += (await Promise.all(workers)).reduce((a, b) => a + b, 0);
  }
  assert.ok(totalOps > ROUNDS, `the workers got requests in before the kills (${totalOps} operations)`);

  // Every blob's bytes hash to its name.
  let blobs = 0;
  for (const algorithm of await readdir(join(root, 'blobs'))) {
    for (const prefix of await readdir(join(root, 'blobs', algorithm))) {
      for (const hex of await readdir(join(root, 'blobs', algorithm, prefix))) {
        assert.equal(hex.slice(0, 2), prefix);
        assert.equal(await hashFile(join(root, 'blobs', algorithm, prefix, hex), algorithm), hex, `blob ${algorithm}:${hex}`);
        blobs++;
      }
    }
  }
  assert.ok(blobs > 0, 'some blobs were stored');

  // Every manifest record has its bytes; every tag names a recorded manifest.
  const repositories: Array<{ name: string; dir: string }> = [];
  await walkRepositories(join(root, 'repositories'), '', repositories);
  let tags = 0;
  for (const repo of repositories) {
    for (const hex of await readdir(join(repo.dir, '_manifests', 'sha256')).catch(() => [] as string[])) {
      const record = JSON.parse(await readFile(join(repo.dir, '_manifests', 'sha256', hex), 'utf8')) as { digest: string };
      assert.equal(record.digest, `sha256:${hex}`);
      assert.equal(await hashFile(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex), 'sha256'), hex);
    }
    for (const tag of await readdir(join(repo.dir, '_tags')).catch(() => [] as string[])) {
      const digest = (await readFile(join(repo.dir, '_tags', tag), 'utf8')).trim();
      assert.match(digest, /^sha256:[0-9a-f]{64}$/, `${repo.name}:${tag}`);
      await readFile(join(repo.dir, '_manifests', 'sha256', digest.slice(7)));
      tags++;
    }
  }

  // And a server started on what's left serves every tag with the right bytes.
  const { child, address } = await startChild(root);
  t.after(() => child.kill('SIGKILL'));
  for (const repo of repositories) {
    for (const tag of await readdir(join(repo.dir, '_tags')).catch(() => [] as string[])) {
      const res = await rawRequest(address, 'GET', `/v2/${repo.name}/manifests/${tag}`, { headers: { Accept: ALL_MANIFEST_TYPES } });
      assert.equal(res.status, 200, `${repo.name}:${tag}`);
      assert.equal(res.headers['docker-content-digest'], digestOf(res.body));
    }
  }
  t.diagnostic(`${ROUNDS} rounds, ${totalOps} operations, ${blobs} blobs and ${tags} tags verified`);
});
