// Keeps a binary's last gzip layer, with the index of its members (member-reuse.ts), beside the
// binary's stable output path, so the next command that rebuilds it — a one-shot `tsko build`, or
// a dev session after a restart — copies the members of unchanged blocks instead of compressing
// them again (on the 55 MB bench service most of its 1 MiB blocks survive a one-line edit). The
// layer file is kept under its digest (a hard link to the one the command wrote, read-only), and
// the index names that digest, which is checked before any member is copied from the file. Everything
// here is best effort; a cache that cannot be read or written means only that all is compressed.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { DEFAULT_GZIP_BLOCK_SIZE } from '../image/compress.js';
import type { MemberIndex } from '../image/member-reuse.js';

/** What the members were made with: an index made otherwise describes other bytes. */
const FORMAT = `gzip-members-v1 block=${DEFAULT_GZIP_BLOCK_SIZE}`;

export interface KeptMembers {
  path: string;
  mediaType: string;
  index: MemberIndex;
}

interface IndexFile {
  format: string;
  mediaType: string;
  /** The kept layer file's name: `<digest hex>.layer`. */
  file: string;
  size: number;
  members: Array<[key: string, offset: number, length: number]>;
}

/** The directory beside `output` where its last layer is kept. */
function dirFor(output: string): string {
  return join(dirname(output), `.${basename(output)}.members`);
}

/** The kept layer and index of `output`'s last build, if any (its media type says which layers it can serve). */
export async function loadMembers(output: string): Promise<KeptMembers | undefined> {
  try {
    const dir = dirFor(output);
    const kept = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as IndexFile;
    if (kept.format !== FORMAT || typeof kept.mediaType !== 'string' || !/^[0-9a-f]{64}\.layer$/.test(kept.file)) return undefined;
    const path = join(dir, kept.file);
    if ((await stat(path)).size !== kept.size) return undefined;
    // Members are copied into a new layer as they are, so the kept file must be the very bytes the
    // index describes: its name is its digest, checked here once (a few ms per 10 MB, far less
    // than compressing them).
    if ((await sha256OfFile(path)) !== kept.file.slice(0, -'.layer'.length)) return undefined;
    return { path, mediaType: kept.mediaType, index: new Map(kept.members.map(([key, offset, length]) => [key, { offset, length }])) };
  } catch {
    return undefined;
  }
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Keeps `layerPath` (digest `digestHex`, `size` bytes) and its index as `output`'s last layer. */
export async function saveMembers(output: string, layer: { path: string; digestHex: string; size: number; mediaType: string }, index: MemberIndex): Promise<void> {
  try {
    const dir = dirFor(output);
    await mkdir(dir, { recursive: true });
    const file = `${layer.digestHex}.layer`;
    const target = join(dir, file);
    if (!(await stat(target).then(() => true, () => false))) {
      const temp = join(dir, `.${file}.${process.pid}.tmp`);
      await link(layer.path, temp);
      await rename(temp, target);
    }
    const members: IndexFile['members'] = [...index].map(([key, at]) => [key, at.offset, at.length]);
    await writeFileAtomic(join(dir, 'index.json'), JSON.stringify({ format: FORMAT, mediaType: layer.mediaType, file, size: layer.size, members } satisfies IndexFile));
    // The layers kept before this one (and temp links a killed command left) are not needed now.
    const names = await readdir(dir);
    await Promise.all(names.filter((name) => name !== file && name !== 'index.json').map((name) => unlink(join(dir, name)).catch(() => undefined)));
  } catch {
    // Only a cache: the next build compresses everything.
  }
}
