// The session log of `tsko dev`: every event of the session (compiler diagnostics with all their
// lines, every revision log line, every stage) as one JSON object per line in a file under the
// cache dir, so nothing the dashboard had to cut or scroll away is lost. A subscriber like the
// reporters: the bus listener only appends a string to a buffer; a timer writes the buffer out in
// one append, so a slow disk never slows an iteration. The file is bounded: past `maxBytes` it is
// renamed to `<name>.1` (replacing an older `.1`) and a new one begins; only the newest `keep`
// sessions' logs stay in the directory.
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventBus, TskoEvent } from '../events.js';

export interface SessionLogOptions {
  /** The directory of session logs (`<cacheDir>/dev/logs`). */
  dir: string;
  events: Pick<EventBus, 'subscribe' | 'emit'>;
  /** Size at which the file is rotated (default 20 MiB). */
  maxBytes?: number;
  /** Session logs kept in the directory, this one included (default 10). */
  keep?: number;
  /** Time between two writes (default 200 ms). */
  flushMs?: number;
  /** For the file name; default now. */
  now?: Date;
  pid?: number;
}

export interface SessionLog {
  readonly path: string;
  /** Writes what is buffered and stops listening; safe to call twice. */
  close(): Promise<void>;
}

const DEFAULTS = { maxBytes: 20 * 1024 * 1024, keep: 10, flushMs: 200 } as const;

/** `20261206T021106Z-12345.jsonl`: sorts by time, unique per process. */
export function sessionLogName(now: Date, pid: number): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
  return `${stamp}-${pid}.jsonl`;
}

export async function openSessionLog(options: SessionLogOptions): Promise<SessionLog> {
  const maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
  const flushMs = options.flushMs ?? DEFAULTS.flushMs;
  await mkdir(options.dir, { recursive: true });
  const path = join(options.dir, sessionLogName(options.now ?? new Date(), options.pid ?? process.pid));
  let file: FileHandle = await open(path, 'a');
  let size = 0;
  await prune(options.dir, options.keep ?? DEFAULTS.keep, path);

  let buffer: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  // One write at a time, in order; a failed write (disk full) drops that batch, never the session.
  let writing: Promise<void> = Promise.resolve();
  let closed = false;

  const writeOut = async (text: string) => {
    if (size > 0 && size + Buffer.byteLength(text) > maxBytes) {
      await file.close();
      await rename(path, `${path}.1`);
      file = await open(path, 'a');
      size = 0;
    }
    await file.appendFile(text);
    size += Buffer.byteLength(text);
  };

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (buffer.length === 0) return writing;
    const text = buffer.join('');
    buffer = [];
    writing = writing.then(() => writeOut(text)).catch(() => undefined);
    return writing;
  };

  const listener = (event: TskoEvent) => {
    if (closed) return;
    buffer.push(JSON.stringify(event) + '\n');
    if (!timer) {
      timer = setTimeout(() => void flush(), flushMs);
      // The log must never be what keeps the process alive.
      timer.unref();
    }
  };
  const unsubscribe = options.events.subscribe(listener);
  options.events.emit({ type: 'session.log', path });

  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= (async () => {
        closed = true;
        unsubscribe();
        await flush();
        await file.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}

/** Removes all but the newest `keep` session logs (and their rotated halves); this one stays. */
async function prune(dir: string, keep: number, current: string): Promise<void> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.jsonl'));
  const dated = await Promise.all(
    names.map(async (name) => ({ name, mtime: (await stat(join(dir, name)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  const old = dated
    .filter((entry) => join(dir, entry.name) !== current)
    .sort((a, b) => b.mtime - a.mtime || b.name.localeCompare(a.name))
    .slice(Math.max(0, keep - 1));
  await Promise.all(old.flatMap(({ name }) => [rm(join(dir, name), { force: true }), rm(join(dir, `${name}.1`), { force: true })]));
}
