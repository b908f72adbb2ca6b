// Resumable uploads on the embedded registry: a chunk that fails part-way (the client goes away
// mid-body, the chunk runs over --max-body, the disk fills up) leaves the session where it was, and
// the client's retry of that chunk followed by the closing PUT stores the blob under its digest.
// Also what the server says about those failures: a client going away is a debug line, a full
// disk one error line naming the path and the room needed, however many requests hit it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer, type RegistryServerOptions, type RunningRegistry } from '../../src/registry/server/index.js';
import { digestOf, rawRequest, tempDir, type RawResponse } from '../fixtures/registry/images.js';

type T = { after(fn: () => unknown): void };

const MiB = 1024 * 1024;
const REPO = 'resume/app';

interface Logged {
  errors: unknown[];
  debug: string[];
}

async function serve(t: T, options: Partial<RegistryServerOptions> & { root: string }): Promise<RunningRegistry & Logged> {
  const errors: unknown[] = [];
  const debug: string[] = [];
  const registry = await startRegistryServer({
    addr: '127.0.0.1:0',
    onError: (err) => errors.push(err),
    onDebug: (message) => debug.push(message),
    ...options,
  });
  t.after(() => registry.close());
  return Object.assign(registry, { errors, debug });
}

/** Polls `check` every 10 ms until it returns true; fails after `ms`. */
async function waitFor(what: string, ms: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Session {
  id: string;
  location: string;
}

async function openSession(address: string): Promise<Session> {
  const res = await rawRequest(address, 'POST', `/v2/${REPO}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
  assert.equal(res.status, 202);
  return { id: String(res.headers['docker-upload-uuid']), location: String(res.headers.location) };
}

function patch(address: string, session: Session, offset: number, chunk: Buffer): Promise<RawResponse> {
  return rawRequest(address, 'PATCH', session.location, {
    headers: { 'Content-Range': `${offset}-${offset + chunk.length - 1}`, 'Content-Type': 'application/octet-stream' },
    body: chunk,
  });
}

async function rangeOf(address: string, session: Session): Promise<string> {
  const res = await rawRequest(address, 'GET', session.location);
  assert.equal(res.status, 204);
  return String(res.headers.range);
}

/** The closing PUT, then a GET of the blob: both must succeed with the whole blob's bytes. */
async function finishAndCheck(address: string, session: Session, blob: Buffer): Promise<void> {
  const done = await rawRequest(address, 'PUT', `${session.location}?digest=${digestOf(blob)}`);
  assert.equal(done.status, 201, `closing PUT: ${done.body.toString()}`);
  const got = await rawRequest(address, 'GET', `/v2/${REPO}/blobs/${digestOf(blob)}`);
  assert.equal(got.status, 200);
  assert.equal(digestOf(got.body), digestOf(blob));
}

/**
 * A PATCH that declares `declared` bytes, sends `sent` of them, and goes away once the server has
 * written at least `written` of them to the session file (so they went through its hash too).
 */
async function abandonedPatch(address: string, dataPath: string, session: Session, offset: number, body: Buffer, declared: number, written: number): Promise<void> {
  const [host, port] = address.split(':');
  const req = request({
    host,
    port: Number(port),
    method: 'PATCH',
    path: session.location,
    headers: { 'Content-Length': String(declared), 'Content-Range': `${offset}-${offset + declared - 1}` },
  });
  req.on('error', () => undefined);
  req.write(body);
  await waitFor('the server to write part of the chunk', 10_000, async () => (await stat(dataPath)).size >= offset + written);
  req.destroy();
}

test('a PATCH cut off mid-body leaves the upload as it was: the retried chunk and the PUT store the blob', async (t) => {
  const root = await tempDir(t, 'resume-abort');
  const registry = await serve(t, { root });
  const blob = randomBytes(3 * MiB);
  const session = await openSession(registry.address);
  assert.equal((await patch(registry.address, session, 0, blob.subarray(0, MiB))).headers.range, `0-${MiB - 1}`);

  // 1.5 MiB of the next 2 MiB, gone after the server wrote (and hashed) the first MiB of it.
  const dataPath = join(root, 'uploads', session.id, 'data');
  await abandonedPatch(registry.address, dataPath, session, MiB, blob.subarray(MiB, MiB + 1.5 * MiB), 2 * MiB, MiB);
  await waitFor('the session to be cut back', 10_000, async () => (await rangeOf(registry.address, session)) === `0-${MiB - 1}`);
  assert.equal((await stat(dataPath)).size, MiB);

  const retried = await patch(registry.address, session, MiB, blob.subarray(MiB));
  assert.equal(retried.status, 202);
  assert.equal(retried.headers.range, `0-${blob.length - 1}`);
  await finishAndCheck(registry.address, session, blob);

  // Nothing about it was an error of the registry's: one debug line, no error.
  await waitFor('the debug line', 5000, () => registry.debug.length > 0);
  assert.deepEqual(registry.errors, []);
  assert.match(registry.debug.join('\n'), new RegExp(`PATCH /v2/${REPO}/blobs/uploads/${session.id}: client went away mid-request`));
});

/** A PATCH with a chunked body (no Content-Length), so the limit is only found while reading it. */
function chunkedPatch(address: string, session: Session, body: Buffer): Promise<RawResponse & { resetByServer: boolean }> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), method: 'PATCH', path: session.location, headers: { 'Transfer-Encoding': 'chunked' }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const all = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: all,
          json: () => JSON.parse(all.toString()) as unknown,
          errorCode: () => (JSON.parse(all.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code,
          resetByServer: false,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error('chunked PATCH timed out')));
    req.on('error', reject);
    // The whole body is written before any of the answer is read, as a simple client does.
    for (let at = 0; at < body.length; at += 64 * 1024) req.write(body.subarray(at, at + 64 * 1024));
    req.end();
  });
}

test('a chunk over --max-body is a 413 (before or while reading it); the upload continues from where it was', async (t) => {
  const root = await tempDir(t, 'resume-413');
  const limit = 2 * MiB;
  const registry = await serve(t, { root, maxBlobBytes: limit });
  const blob = randomBytes(limit);
  const session = await openSession(registry.address);
  assert.equal((await patch(registry.address, session, 0, blob.subarray(0, MiB))).status, 202);

  // Declared too large: refused before a byte is read.
  const declared = await patch(registry.address, session, MiB, randomBytes(1.5 * MiB));
  assert.equal(declared.status, 413);
  assert.equal(declared.errorCode(), 'SIZE_INVALID');
  // Undeclared: found too large after the first MiB of it went through the hash.
  const streamed = await chunkedPatch(registry.address, session, Buffer.concat([blob.subarray(MiB), randomBytes(MiB / 2)]));
  assert.equal(streamed.status, 413);
  assert.equal(streamed.errorCode(), 'SIZE_INVALID');
  assert.equal(await rangeOf(registry.address, session), `0-${MiB - 1}`);

  assert.equal((await patch(registry.address, session, MiB, blob.subarray(MiB))).status, 202);
  await finishAndCheck(registry.address, session, blob);
  assert.deepEqual(registry.errors, []);
});

/** A tmpfs of `size` mounted for the test, or the reason there can be none. */
async function smallDisk(t: T, size: string): Promise<string | { reason: string }> {
  if (process.getuid?.() !== 0) return { reason: 'needs root to mount a small tmpfs' };
  const mountPoint = await mkdtemp(join(tmpdir(), 'tsko-reg-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (err) {
    await rm(mountPoint, { recursive: true, force: true });
    return { reason: `cannot mount a tmpfs here: ${(err as Error).message}` };
  }
  t.after(async () => {
    execFileSync('umount', ['-l', mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });
  return mountPoint;
}

/** Fill the file system holding `dir` until `leave` bytes are free; returns the filler file. */
async function fillDisk(dir: string, leave: number): Promise<string> {
  const s = await statfs(dir);
  const filler = join(dir, 'filler');
  await writeFile(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - leave)));
  return filler;
}

test('a chunk that fills the disk is a 500, said once in the log with the path and the room needed; after space is freed the retried chunk and the PUT succeed', async (t) => {
  // A real full disk: a 4 MiB tmpfs (needs root; skipped without).
  const disk = await smallDisk(t, '4m');
  if (typeof disk !== 'string') {
    t.skip(disk.reason);
    return;
  }
  const root = join(disk, 'registry');
  const registry = await serve(t, { root });
  const blob = randomBytes(1.5 * MiB);
  const session = await openSession(registry.address);
  assert.equal((await patch(registry.address, session, 0, blob.subarray(0, MiB / 2))).status, 202);

  const filler = await fillDisk(disk, 256 * 1024);
  for (let attempt = 0; attempt < 2; attempt++) {
    const full = await patch(registry.address, session, MiB / 2, blob.subarray(MiB / 2));
    assert.equal(full.status, 500, `attempt ${attempt}`);
    assert.match(String((full.json() as { errors: Array<{ message: string }> }).errors[0]?.message), /storage is full/);
    assert.equal(await rangeOf(registry.address, session), `0-${MiB / 2 - 1}`);
  }
  const said = registry.errors.map((e) => (e as Error).message);
  assert.equal(said.length, 1, `one line for the full disk, got: ${said.join(' | ')}`);
  const dataPath = join(root, 'uploads', session.id, 'data');
  assert.match(said[0]!, new RegExp(`^registry storage is full: writing ${dataPath.replace(/[.]/g, '\\.')} needs 1\\.0 MiB \\(1048576 bytes\\), \\d+.* free$`));

  await unlink(filler);
  assert.equal((await patch(registry.address, session, MiB / 2, blob.subarray(MiB / 2))).status, 202);
  await finishAndCheck(registry.address, session, blob);

  // Storage worked again in between, so the next full disk is news again: a second line.
  const again = await fillDisk(disk, 64 * 1024);
  t.after(() => unlink(again).catch(() => undefined));
  const next = await openSession(registry.address);
  assert.equal((await patch(registry.address, next, 0, randomBytes(MiB))).status, 500);
  assert.equal(registry.errors.length, 2);
  assert.deepEqual(registry.debug, []);
});

test('a client that writes a whole manifest over 4 MiB before reading gets the 413, not a reset; the connection stays usable', async (t) => {
  const root = await tempDir(t, 'manifest-413');
  const registry = await serve(t, { root });
  const { connect } = await import('node:net');
  const [host, port] = registry.address.split(':');
  const body = Buffer.alloc(6 * MiB, 0x20);
  const socket = connect({ host: host!, port: Number(port) });
  t.after(() => socket.destroy());
  const received: Buffer[] = [];
  const socketError = new Promise<Error | undefined>((resolve) => {
    socket.on('error', resolve);
    socket.on('close', () => resolve(undefined));
  });
  socket.on('data', (c: Buffer) => received.push(c));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const head = `PUT /v2/${REPO}/manifests/v1 HTTP/1.1\r\nHost: ${registry.address}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: ${body.length}\r\n\r\n`;
  // Every byte handed to the kernel before we look at the answer: the server must read them.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server stopped reading the body')), 15_000);
    socket.write(Buffer.concat([Buffer.from(head), body]), (err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    });
  });
  // A second request on the same connection is answered too.
  socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${registry.address}\r\nConnection: close\r\n\r\n`);
  const timer = setTimeout(() => socket.destroy(new Error('no answer within 15 s')), 15_000);
  const err = await socketError;
  clearTimeout(timer);
  assert.equal(err, undefined, `socket error: ${err?.message}`);
  const text = Buffer.concat(received).toString('latin1');
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.match(text, /"code":"SIZE_INVALID"/);
  assert.match(text, /HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n\{\}$/);
  assert.deepEqual(registry.errors, []);
});

test('an upload session idle longer than the expiry is removed by the server; one still receiving bytes stays', async (t) => {
  const root = await tempDir(t, 'expiry');
  // A session left behind by an earlier server on the same root (its hash only ever in that process).
  const earlier = await startRegistryServer({ addr: '127.0.0.1:0', root });
  const leftOver = await openSession(earlier.address);
  assert.equal((await patch(earlier.address, leftOver, 0, randomBytes(1000))).status, 202);
  await earlier.close();

  const idleMs = 500;
  const registry = await serve(t, { root, uploadIdleMs: idleMs });
  const abandoned = await openSession(registry.address);
  assert.equal((await patch(registry.address, abandoned, 0, randomBytes(1000))).status, 202);
  const active = await openSession(registry.address);
  const activeBytes: Buffer[] = [];
  const started = Date.now();
  // The active session gets a chunk every 100 ms for 1.4 s: more than two idle periods, never idle for one.
  for (let i = 0; i < 15; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    const chunk = randomBytes(100);
    const offset = activeBytes.reduce((n, b) => n + b.length, 0);
    assert.equal((await patch(registry.address, active, offset, chunk)).status, 202, `chunk ${i}`);
    activeBytes.push(chunk);
  }
  assert.ok(Date.now() - started >= 2 * idleMs);
  await waitFor('the idle sessions to go', 5000, async () => {
    const left = await readdir(join(root, 'uploads'));
    return !left.includes(abandoned.id) && !left.includes(leftOver.id);
  });
  for (const gone of [abandoned, leftOver]) {
    const res = await rawRequest(registry.address, 'GET', gone.location);
    assert.equal(res.status, 404);
    assert.equal(res.errorCode(), 'BLOB_UPLOAD_UNKNOWN');
  }
  assert.ok((await readdir(join(root, 'uploads'))).includes(active.id), 'the active session is still there');
  await finishAndCheck(registry.address, active, Buffer.concat(activeBytes));
  assert.deepEqual(registry.errors, []);
});

test('a client leaving mid-download is a debug line, not an error', async (t) => {
  const root = await tempDir(t, 'download-abort');
  const registry = await serve(t, { root });
  const blob = randomBytes(16 * MiB);
  const session = await openSession(registry.address);
  assert.equal((await patch(registry.address, session, 0, blob)).status, 202);
  assert.equal((await rawRequest(registry.address, 'PUT', `${session.location}?digest=${digestOf(blob)}`)).status, 201);

  const [host, port] = registry.address.split(':');
  await new Promise<void>((resolve, reject) => {
    const req = request({ host, port: Number(port), path: `/v2/${REPO}/blobs/${digestOf(blob)}` }, (res) => {
      assert.equal(res.statusCode, 200);
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
  await waitFor('the debug line', 5000, () => registry.debug.length > 0);
  assert.match(registry.debug[0]!, new RegExp(`^GET /v2/${REPO}/blobs/${digestOf(blob)}: client went away mid-request`));
  assert.deepEqual(registry.errors, []);
  // And the server serves the next download whole.
  const again = await rawRequest(registry.address, 'GET', `/v2/${REPO}/blobs/${digestOf(blob)}`);
  assert.equal(digestOf(again.body), digestOf(blob));
});

test('tsko registry serve prints nothing when a client goes away mid-upload, and a debug line with --verbose', async (t) => {
  const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.js');
  const { spawn } = await import('node:child_process');
  const stderrOf = async (verbose: boolean): Promise<string> => {
    const root = await tempDir(t, verbose ? 'cli-verbose' : 'cli-quiet');
    const args = [main, ...(verbose ? ['--verbose'] : []), 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', root];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitFor('the serving line', 20_000, () => stderr.includes('\n'));
    const address = /serving http:\/\/(\S+)/.exec(stderr)?.[1];
    assert.ok(address, stderr);
    const session = await openSession(address);
    await abandonedPatch(address, join(root, 'uploads', session.id, 'data'), session, 0, randomBytes(1.5 * MiB), 2 * MiB, MiB);
    await waitFor('the session to be cut back', 10_000, async () => (await rangeOf(address, session)) === '0-0');
    if (verbose) await waitFor('the debug line', 5000, () => stderr.includes('debug:'));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    assert.equal(await exited, 0);
    clearTimeout(timer);
    return stderr;
  };
  const quiet = await stderrOf(false);
  assert.match(quiet, /^tsko registry: serving http:\/\/\S+ \(root .+\)\n$/);
  const verbose = await stderrOf(true);
  const lines = verbose.trimEnd().split('\n');
  assert.equal(lines.length, 2, verbose);
  assert.match(lines[1]!, /^tsko registry: debug: PATCH \/v2\/resume\/app\/blobs\/uploads\/[0-9a-f-]+: client went away mid-request/);
});
