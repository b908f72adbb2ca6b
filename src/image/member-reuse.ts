// Reuses gzip members of a layer's previous version. compress.ts cuts its input into fixed 1 MiB
// blocks and compresses each on its own, so a block whose bytes did not change compresses to the
// very same member: it can be copied from the previous layer file instead of compressed again.
// A rebuilt Go binary mostly did not change (the large bench service, 55 blocks: a same-length edit
// of a string leaves 53 unchanged, a longer one 32, the rest shifted), so a rebuild's layer costs
// a sha256 per block and a read of the unchanged members from the page cache. The output is the
// same bytes as compressing everything (pinned by test/unit/compress.test.ts), hence the same
// digest. A member that cannot be read back (the file went away) is simply compressed.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Where each member a layer file holds sits in it, by the sha256 of the block it was made from. */
export type MemberIndex = ReadonlyMap<string, { offset: number; length: number }>;

/** What the gzip stage asks per block, and tells about each member it writes. */
export interface MemberReuse {
  /** The block's key, and the member a previous layer made from the same bytes (if any). */
  lookup(block: Buffer): { key: string; member: Promise<Buffer | undefined> };
  /** Members in output order: the key of the block each was made from, and its length. */
  emitted(key: string, length: number): void;
}

/** Reuse from `previous` (a layer file and its index); records the index of the layer being written. */
export class LayerMembers implements MemberReuse {
  private readonly previous: { path: string; index: MemberIndex } | undefined;
  private readonly written = new Map<string, { offset: number; length: number }>();
  private offset = 0;
  /** Blocks that were copied, not compressed. */
  reused = 0;

  constructor(previous?: { path: string; index: MemberIndex }) {
    this.previous = previous;
  }

  /** The index of what was written, for the next version of this layer. */
  get index(): MemberIndex {
    return this.written;
  }

  lookup(block: Buffer): { key: string; member: Promise<Buffer | undefined> } {
    const key = createHash('sha256').update(block).digest('hex');
    const at = this.previous?.index.get(key);
    if (!this.previous || !at) return { key, member: Promise.resolve(undefined) };
    const member = readAt(this.previous.path, at.offset, at.length).then(
      (bytes) => {
        if (bytes) this.reused += 1;
        return bytes;
      },
      () => undefined,
    );
    return { key, member };
  }

  emitted(key: string, length: number): void {
    if (!this.written.has(key)) this.written.set(key, { offset: this.offset, length });
    this.offset += length;
  }
}

/** `length` bytes at `offset`, or undefined when the file is shorter (it is not the one indexed). */
async function readAt(path: string, offset: number, length: number): Promise<Buffer | undefined> {
  const handle = await open(path, 'r');
  try {
    const bytes = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(bytes, 0, length, offset);
    return bytesRead === length ? bytes : undefined;
  } finally {
    await handle.close();
  }
}
