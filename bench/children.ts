// Every process and temp dir the benchmark starts, so that one cleanup (normal end, error, Ctrl-C,
// the global deadline) stops them all. Children run in their own process group so a grandchild
// (go build, a revision) is reached too; the dev daemon gets SIGTERM first because it stops its
// revisions itself, and SIGKILL only after a grace period.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Options, type ResultPromise } from 'execa';

type Child = ResultPromise<Options>;

const GRACE_MS = 3000;

export class Children {
  private readonly live = new Set<Child>();
  private readonly exited = new WeakSet<Child>();
  private readonly dirs = new Set<string>();

  /** Start a process in its own group, tracked until it exits. */
  spawn(file: string, args: readonly string[], options: Options): Child {
    const child = execa(file, args, { ...options, detached: true, cleanup: false, reject: false }) as Child;
    this.live.add(child);
    void child.finally(() => {
      this.live.delete(child);
      this.exited.add(child);
    });
    return child;
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  /** SIGTERM one child, SIGKILL its group if it is still there after the grace period. */
  async stop(child: Child, graceMs = GRACE_MS): Promise<void> {
    if (this.exited.has(child) || child.pid === undefined) return;
    const pid = child.pid;
    const exited = child.then(() => true, () => true);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref());
    await Promise.race([exited, timer]);
    // Whether it exited or not: sweep its group (a go build it left behind, or itself).
    killGroup(pid, 'SIGKILL');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  /** Stop everything and remove every temp dir. Safe to call twice. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.live].map((child) => this.stop(child)));
    // A revision is started in its own session by the daemon; if the daemon could not stop it,
    // find it by the temp dir it runs from (only dirs this run created) and stop it by pid.
    for (const pid of processesUnder([...this.dirs])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.all([...this.dirs].map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined)));
    this.dirs.clear();
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is empty
  }
}

/** Pids whose command line names a path under one of these dirs. */
export function processesUnder(dirs: readonly string[]): number[] {
  if (dirs.length === 0) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (dirs.some((dir) => cmdline.includes(dir))) found.push(pid);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** A port free on 127.0.0.1 right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface MemoryKb {
  rss: number;
  /** Anonymous pages: JS heap, malloc, buffers. */
  anon?: number;
  /** File-backed pages: the mapped node binary and libraries. */
  file?: number;
  /** VmHWM: the peak RSS since the process started. */
  hwm?: number;
}

/** VmRSS of a process and its parts in kB, from /proc. */
export function memoryKb(pid: number): MemoryKb | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return match ? Number(match[1]) : undefined;
  };
  const rss = field('VmRSS');
  if (rss === undefined) return undefined;
  const anon = field('RssAnon');
  const file = field('RssFile');
  const hwm = field('VmHWM');
  return { rss, ...(anon !== undefined ? { anon } : {}), ...(file !== undefined ? { file } : {}), ...(hwm !== undefined ? { hwm } : {}) };
}

/** Poll a URL until it answers (any status below 500) or the deadline passes. */
export async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The last lines of a text, for error messages that quote a child's stderr. */
export function tail(text: string, lines = 15): string {
  return text.split('\n').slice(-lines).join('\n');
}
