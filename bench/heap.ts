// Heap snapshots of the dev daemon (taken with `--heapsnapshot-signal`) and what grew between two of
// them, grouped by constructor, so an RSS target that is missed says whether the JS heap grew and
// with what — or that the growth is outside it.
import { open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from './children.js';

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapGroup {
  name: string;
  countDelta: number;
  bytesDelta: number;
  count: number;
  bytes: number;
}

export interface HeapGrowth {
  beforeMb: number;
  afterMb: number;
  top: HeapGroup[];
}

/** Signal the daemon and wait until the snapshot file it writes into `dir` is complete. */
export async function takeSnapshot(pid: number, dir: string, timeoutMs = 120_000): Promise<string> {
  const before = new Set(await readdir(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const file = (await readdir(dir)).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
    if (file && (await complete(join(dir, file)))) return join(dir, file);
    if (Date.now() > deadline) throw new Error(`no complete heap snapshot in ${dir} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** A snapshot is one JSON object; it is complete once its last bytes close it. */
async function complete(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size < 2) return false;
    const tail = Buffer.alloc(Math.min(size, 64));
    await handle.read(tail, 0, tail.length, size - tail.length);
    return tail.toString('utf8').trimEnd().endsWith('}');
  } finally {
    await handle.close();
  }
}

function groups(snapshot: HeapSnapshot): Map<string, { count: number; bytes: number }> {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] as number] ?? 'unknown';
    const name = snapshot.strings[snapshot.nodes[i + nameAt] as number] ?? '';
    // Objects by constructor; strings, arrays, code and the rest by kind.
    const key = type === 'object' || type === 'native' ? name : `(${type})`;
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += snapshot.nodes[i + sizeAt] as number;
    out.set(key, entry);
  }
  return out;
}

export async function heapGrowth(beforePath: string, afterPath: string, top = 10): Promise<HeapGrowth> {
  const before = groups(JSON.parse(await readFile(beforePath, 'utf8')) as HeapSnapshot);
  const after = groups(JSON.parse(await readFile(afterPath, 'utf8')) as HeapSnapshot);
  const total = (map: Map<string, { bytes: number }>) => [...map.values()].reduce((sum, g) => sum + g.bytes, 0);
  const rows: HeapGroup[] = [...after.entries()].map(([name, g]) => ({
    name,
    count: g.count,
    bytes: g.bytes,
    countDelta: g.count - (before.get(name)?.count ?? 0),
    bytesDelta: g.bytes - (before.get(name)?.bytes ?? 0),
  }));
  const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
  return {
    beforeMb: mb(total(before)),
    afterMb: mb(total(after)),
    top: rows.sort((a, b) => b.bytesDelta - a.bytesDelta).slice(0, top),
  };
}

/** The live JS heap of one snapshot and its largest groups. */
export async function heapTop(path: string, top = 10): Promise<{ liveMb: number; top: Array<{ name: string; count: number; bytes: number }> }> {
  const map = groups(JSON.parse(await readFile(path, 'utf8')) as HeapSnapshot);
  const total = [...map.values()].reduce((sum, g) => sum + g.bytes, 0);
  return {
    liveMb: Math.round((total / 2 ** 20) * 10) / 10,
    top: [...map.entries()]
      .map(([name, g]) => ({ name, count: g.count, bytes: g.bytes }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, top),
  };
}
