// StreamedUploads' own bookkeeping, with a stand-in for the client's upload session (the HTTP side
// is tested against real registries in test/integration/streamed-upload.test.ts): the tap hands
// the body every byte in order, makes the layer writer wait only past its high-water mark and never
// once the stream failed, keys a finished stream by repository and digest for the writer to take
// once, and does not stream to the in-process registry or to one that refused a streamed PATCH.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Digest } from '../../src/image/digest.js';
import { StreamedUploads } from '../../src/publish/streamed-uploads.js';
import type { Repository } from '../../src/registry/reference.js';
import type { StreamedUpload } from '../../src/registry/uploads.js';

const REPO: Repository = { registry: 'registry.example:5000', repository: 'team/app' };
const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;

/** An upload session that reads the body only when told to, and records what it was asked. */
function controlledClient() {
  const calls: { body: AsyncIterator<Buffer>; received: Buffer[]; finished: [string, number][]; cancelled: number; fail(err: unknown): void; done: Promise<void> }[] = [];
  const client = {
    beginStreamedUpload(_target: Repository, body: AsyncIterable<Buffer>): StreamedUpload {
      let fail!: (err: unknown) => void;
      // Settles only by failing: a stream that succeeds is answered after the body, past these tests.
      const sent = new Promise<void>((_resolve, reject) => (fail = reject));
      sent.catch(() => undefined);
      const call = { body: body[Symbol.asyncIterator](), received: [] as Buffer[], finished: [] as [string, number][], cancelled: 0, fail, done: sent };
      calls.push(call);
      return {
        sent,
        finish: (digest, size) => {
          call.finished.push([digest, size]);
          return Promise.resolve();
        },
        cancel: () => {
          call.cancelled += 1;
          return Promise.resolve();
        },
      };
    },
  };
  return { client, calls };
}

/** Reads `n` chunks of the body (bounded: it is a test). */
async function read(call: { body: AsyncIterator<Buffer>; received: Buffer[] }, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const next = await call.body.next();
    if (next.done) return;
    call.received.push(next.value);
  }
}

test('the tap passes every byte in order, waits past the high-water mark, and the finished stream is taken once by digest', async () => {
  const { client, calls } = controlledClient();
  const streams = new StreamedUploads({ client, repositoryFor: () => REPO });
  const tap = streams.tap('example.com/app', 'linux/amd64');
  assert.ok(tap);
  const chunk = Buffer.alloc(3 * 1024 * 1024, 7);
  assert.equal(tap.write(chunk), undefined, 'below the mark: no wait');
  assert.equal(tap.write(chunk), undefined);
  const wait = tap.write(chunk); // 9 MiB queued: past the 8 MiB mark
  assert.ok(wait, 'past the mark the writer waits');
  let released = false;
  void wait.then(() => (released = true));
  const call = calls[0]!;
  await read(call, 1);
  await wait;
  assert.ok(released, 'reading the body releases the writer');
  tap.end(DIGEST, 3 * chunk.length);
  await read(call, 5);
  assert.equal(Buffer.concat(call.received).length, 3 * chunk.length);
  assert.equal((await call.body.next()).done, true, 'the body ends with the layer');

  assert.equal(streams.take(REPO, `sha256:${'b'.repeat(64)}`), undefined, 'another digest has no stream');
  const pending = streams.take(REPO, DIGEST);
  assert.ok(pending);
  assert.equal(streams.take(REPO, DIGEST), undefined, 'taken once');
  assert.equal(await pending.complete(), true);
  assert.deepEqual(call.finished, [[DIGEST, 3 * chunk.length]]);
});

test('a stream the registry ended stops taking bytes, never blocks the writer, and its blob goes up from the file (a retry, with the cause)', async () => {
  const { client, calls } = controlledClient();
  const streams = new StreamedUploads({ client, repositoryFor: () => REPO });
  const tap = streams.tap('example.com/app', 'linux/amd64');
  assert.ok(tap);
  const big = Buffer.alloc(9 * 1024 * 1024);
  const wait = tap.write(big);
  assert.ok(wait);
  calls[0]!.fail(Object.assign(new Error('answered 416'), { status: 416 }));
  await wait; // released by the failure, not by reading
  assert.equal(tap.write(big), undefined, 'a failed stream takes nothing more');
  tap.end(DIGEST, big.length * 2);
  const pending = streams.take(REPO, DIGEST);
  assert.ok(pending, 'a failed stream is still handed to the writer, which reports the upload from the file as its retry');
  assert.equal(await pending.complete(), false, 'it cannot complete: the blob goes up from the file');
  assert.equal(pending.failureCause, '416', 'the status the registry answered');
  assert.equal(streams.tap('example.com/app', 'linux/amd64'), undefined, 'a registry that refused a streamed PATCH is not streamed to again');
});

test('a dropped connection is not a refusal; the in-process registry is never streamed to; a newer layer cancels an untaken stream', async () => {
  const { client, calls } = controlledClient();
  const streams = new StreamedUploads({ client, repositoryFor: (importPath) => (importPath === 'local/app' ? { registry: '127.0.0.1:5001', repository: 'app' } : REPO), inProcessAddress: '127.0.0.1:5001' });
  assert.equal(streams.tap('local/app', 'linux/amd64'), undefined);
  const first = streams.tap('example.com/app', 'linux/amd64');
  assert.ok(first);
  calls[0]!.fail(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  await calls[0]!.done.catch(() => undefined);
  const second = streams.tap('example.com/app', 'linux/amd64');
  assert.ok(second, 'streams again after a network failure');
  second.end(DIGEST, 0);
  const third = streams.tap('example.com/app', 'linux/amd64');
  assert.ok(third);
  assert.equal(calls[1]!.cancelled, 1, 'the untaken stream of the same slot was cancelled');
  assert.equal(streams.take(REPO, DIGEST), undefined);
  await streams.close();
  assert.equal(calls[2]!.cancelled, 1, 'close cancels what nobody took');
});
