// Reads the Go build ID from an ELF binary's PT_NOTE segment. Its last two parts identify the link
// (its inputs and the resulting content), so two binaries whose last two parts match do the same
// thing: a comment-only edit changes only the main package's part, and the dev loop calls that
// "unchanged" without pushing or deploying anything.
import { open } from 'node:fs/promises';

const GO_NOTE_TYPE = 4;

export async function readGoBuildId(file: string): Promise<string | undefined> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(64);
    await handle.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return undefined; // not ELF
    const is64 = header[4] === 2;
    const little = header[5] === 1;
    const u16 = (buf: Buffer, at: number) => (little ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
    const u32 = (buf: Buffer, at: number) => (little ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
    const u64 = (buf: Buffer, at: number) => Number(little ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at));
    const phoff = is64 ? u64(header, 0x20) : u32(header, 0x1c);
    const phentsize = u16(header, is64 ? 0x36 : 0x2a);
    const phnum = u16(header, is64 ? 0x38 : 0x2c);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const entry = table.subarray(i * phentsize, (i + 1) * phentsize);
      if (u32(entry, 0) !== 4) continue; // PT_NOTE
      const offset = is64 ? u64(entry, 0x08) : u32(entry, 0x04);
      const size = is64 ? u64(entry, 0x20) : u32(entry, 0x10);
      const notes = Buffer.alloc(Math.min(size, 1 << 16));
      await handle.read(notes, 0, notes.length, offset);
      for (let at = 0; at + 12 <= notes.length; ) {
        const nameSize = u32(notes, at);
        const descSize = u32(notes, at + 4);
        const type = u32(notes, at + 8);
        const nameStart = at + 12;
        const descStart = nameStart + align4(nameSize);
        const name = notes.subarray(nameStart, nameStart + nameSize).toString('latin1').replace(/\0+$/, '');
        if (name === 'Go' && type === GO_NOTE_TYPE) return notes.subarray(descStart, descStart + descSize).toString('latin1');
        at = descStart + align4(descSize);
      }
    }
    return undefined;
  } finally {
    await handle.close();
  }
}

/** The link's part of a build ID (`actionID/contentID` of the link step). */
export function linkIdentity(buildId: string): string {
  return buildId.split('/').slice(-2).join('/');
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
