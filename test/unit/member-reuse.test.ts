// Reusing the gzip members of a layer's previous version (image/member-reuse.ts): a second input
// sharing most 1 MiB blocks with the first compresses to exactly the bytes the plain stage gives
// (so the same digest), copying the unchanged blocks' members from the first output's file; a
// previous file that is gone only costs compressing again; a block matches only identical bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { compressLayer, type CompressOptions } from '../../src/image/compress.js';
import { LayerMembers } from '../../src/image/member-reuse.js';
import { makeTempDir } from '../support/tmp.js';

const MiB = 1024 * 1024;

async function gzipAll(data: Buffer, options: CompressOptions = {}): Promise<Buffer> {
  const out: Buffer[] = [];
  // Odd-sized input chunks: blocks are cut at fixed offsets whatever the chunking.
  const input = Readable.from((function* () {
    for (let i = 0; i < data.length; i += 300_001) yield data.subarray(i, i + 300_001);
  })());
  for await (const chunk of compressLayer('gzip', options)(input)) out.push(chunk);
  return Buffer.concat(out);
}

/** 5 whole blocks and a tail; the second version changes block 2 and the tail. */
function versions(): { first: Buffer; second: Buffer } {
  const first = randomBytes(5 * MiB + 123_456);
  const second = Buffer.from(first);
  second[2 * MiB + 77] = (second[2 * MiB + 77]! + 1) & 0xff;
  second[5 * MiB + 5] = (second[5 * MiB + 5]! + 1) & 0xff;
  return { first, second };
}

test('unchanged blocks are copied from the previous layer file, and the result is byte for byte the plain gzip stage', async (t) => {
  const dir = await makeTempDir('member-reuse', t);
  const { first, second } = versions();
  const recorded = new LayerMembers();
  const firstOut = await gzipAll(first, { members: recorded });
  assert.ok(firstOut.equals(await gzipAll(first)), 'recording does not change the output');
  const path = join(dir, 'first.layer');
  await writeFile(path, firstOut);

  const reusing = new LayerMembers({ path, index: recorded.index });
  const secondOut = await gzipAll(second, { members: reusing });
  assert.equal(reusing.reused, 4, 'blocks 0, 1, 3 and 4 were copied; block 2 and the tail compressed');
  assert.ok(secondOut.equals(await gzipAll(second)), 'the same bytes as compressing everything');
  assert.ok(gunzipSync(secondOut).equals(second));

  // Its own index lets a third version reuse from it in turn.
  const path2 = join(dir, 'second.layer');
  await writeFile(path2, secondOut);
  const third = new LayerMembers({ path: path2, index: reusing.index });
  assert.ok((await gzipAll(second, { members: third })).equals(secondOut));
  assert.equal(third.reused, 6);
});

test('a previous layer file that is gone only means compressing again', async (t) => {
  const dir = await makeTempDir('member-reuse-gone', t);
  const { first, second } = versions();
  const recorded = new LayerMembers();
  const path = join(dir, 'first.layer');
  await writeFile(path, await gzipAll(first, { members: recorded }));
  await unlink(path);
  const reusing = new LayerMembers({ path, index: recorded.index });
  const out = await gzipAll(second, { members: reusing });
  assert.equal(reusing.reused, 0);
  assert.ok(out.equals(await gzipAll(second)));
});

test('an index made with another block size matches only identical bytes (here the tail), and the output is still the plain one', async (t) => {
  const dir = await makeTempDir('member-reuse-size', t);
  const { first } = versions();
  const recorded = new LayerMembers();
  const path = join(dir, 'first.layer');
  await writeFile(path, await gzipAll(first, { members: recorded, blockSize: 512 * 1024 }));
  const reusing = new LayerMembers({ path, index: recorded.index });
  const out = await gzipAll(first, { members: reusing });
  // 5 MiB + 123 456 bytes: both cuttings end with the same 123 456-byte block, whose member is the same.
  assert.equal(reusing.reused, 1);
  assert.ok(out.equals(await gzipAll(first)));
});
