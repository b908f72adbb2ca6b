// A `tsko dev --json` daemon under the benchmark: started as a real user would (the CLI, a front
// port, env for the cache and registry), its JSON event lines collected, and each save followed to
// the end of the iteration it caused.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { IterationResult, Stage, TskoEvent } from '../src/events.js';
import { memoryKb, tail, type Children, type MemoryKb } from './children.js';

export interface DaemonOptions {
  tskoBin: string;
  cwd: string;
  port: number;
  env: Record<string, string>;
  /** More `tsko dev` flags (e.g. `--layer-compression gzip`). */
  args?: readonly string[];
}

/** One iteration, as the daemon's events describe it. Times are ms since the epoch. */
export interface IterationRecord {
  iteration: number;
  result: IterationResult;
  /** tsko's own save→end, measured from the first file event it saw. */
  ms: number;
  startedAt: number;
  endedAt: number;
  /** When the push stage ended (absent when nothing was pushed). */
  pushEndedAt?: number;
  /**
   * When it began to serve: the end of its `ready` stage in an iteration that ended deployed (on
   * the local target that comes before the push ends; elsewhere it is the iteration's end).
   */
  servingAt?: number;
  /** The stage.end of each stage (stages follow each other; a repeated one keeps the last). */
  stages: Partial<Record<Stage, number>>;
  bytesPushed: number;
  blobsPushed: number;
  blobsSkipped: number;
  error?: string;
}

export interface SettledSave {
  record: IterationRecord;
  /** Iterations the save started (more than one means the watcher split it). */
  iterationsStarted: number;
  /** Their numbers, in order (the last is `record`). */
  iterations: number[];
}

type Ev = TskoEvent;

/**
 * The child of `pid` that is the same tsko command re-executed (same Node binary, a command line
 * naming `tskoBin`), from /proc. Its other children (revisions, go build) are never it.
 */
function reexecChildOf(pid: number, tskoBin: string): number | undefined {
  let children: string[];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
  for (const child of children) {
    try {
      const argv = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
      if (argv[0] === process.execPath && argv.includes(tskoBin)) return Number(child);
    } catch {
      // exited while we looked
    }
  }
  return undefined;
}

export class DevDaemon {
  readonly events: Ev[] = [];
  private readonly wakers = new Set<() => void>();
  private stderr = '';
  private exited = false;

  private constructor(
    private readonly children: Children,
    readonly child: ReturnType<Children['spawn']>,
    readonly port: number,
    private readonly tskoBin: string,
  ) {}

  static start(children: Children, options: DaemonOptions): DevDaemon {
    const child = children.spawn(process.execPath, [options.tskoBin, 'dev', '.', '--json', '--port', String(options.port), ...(options.args ?? [])], {
      cwd: options.cwd,
      env: options.env,
      extendEnv: false,
      stdin: 'ignore',
      buffer: false,
    });
    const daemon = new DevDaemon(children, child, options.port, options.tskoBin);
    daemon.collect();
    return daemon;
  }

  /**
   * The pid of the process that serves. When bin/tsko.js re-executes `dev` (to set malloc tuning
   * before Node starts), the process spawned here is a wrapper and the daemon is its child.
   */
  get pid(): number {
    if (this.child.pid === undefined) throw new Error('tsko dev did not start');
    return reexecChildOf(this.child.pid, this.tskoBin) ?? this.child.pid;
  }

  /** The re-exec wrapper's pid, when there is one. */
  get wrapperPid(): number | undefined {
    const daemon = this.pid;
    return daemon !== this.child.pid ? this.child.pid : undefined;
  }

  rssKb(): number | undefined {
    return memoryKb(this.pid)?.rss;
  }

  memoryKb(): MemoryKb | undefined {
    return memoryKb(this.pid);
  }

  stderrTail(): string {
    return tail(this.stderr);
  }

  private collect(): void {
    const lines = createInterface({ input: this.child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      try {
        this.events.push(JSON.parse(line) as Ev);
      } catch {
        return;
      }
      this.wake();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      // Keep a bounded tail: the daemon may log for ten minutes.
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-20000);
    });
    void this.child.finally(() => {
      this.exited = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const waker of this.wakers) waker();
  }

  /** The first event at or after index `from` that matches, within the timeout. */
  async waitFor(from: number, match: (event: Ev) => boolean, timeoutMs: number, what: string): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let index = from;
    for (;;) {
      for (; index < this.events.length; index++) if (match(this.events[index] as Ev)) return index;
      if (this.exited) throw new Error(`tsko dev exited while waiting for ${what}:\n${this.stderrTail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`tsko dev: no ${what} within ${timeoutMs} ms:\n${this.stderrTail()}`);
      await new Promise<void>((resolve) => {
        const waker = () => {
          clearTimeout(timer);
          this.wakers.delete(waker);
          resolve();
        };
        const timer = setTimeout(waker, left);
        this.wakers.add(waker);
      });
    }
  }

  /**
   * Wait for the iteration that a save (made when the log held `from` events) ends in: the first
   * iteration.end after it that was not cancelled by a later one of the same save. Then wait
   * `quietMs` more so a late second event from the same save is seen and counted.
   */
  async settle(from: number, timeoutMs: number, quietMs: number): Promise<SettledSave> {
    const startIndex = await this.waitFor(from, (e) => e.type === 'iteration.start', timeoutMs, 'iteration.start after the save');
    let endIndex = await this.waitFor(startIndex, (e) => e.type === 'iteration.end' && e.result !== 'cancelled', timeoutMs, 'iteration.end');
    for (;;) {
      const seen = this.events.length;
      await new Promise((resolve) => setTimeout(resolve, quietMs));
      const restarted = this.events.slice(seen).some((e) => e.type === 'iteration.start');
      if (!restarted) break;
      endIndex = await this.waitFor(seen, (e) => e.type === 'iteration.end' && e.result !== 'cancelled', timeoutMs, 'iteration.end');
    }
    const end = this.events[endIndex] as Extract<Ev, { type: 'iteration.end' }>;
    const iterations = this.events
      .slice(from)
      .filter((e) => e.type === 'iteration.start')
      .map((e) => e.iteration as number);
    return { record: this.record(end.iteration as number), iterationsStarted: iterations.length, iterations };
  }

  /** Everything the events say about one iteration. */
  record(iteration: number): IterationRecord {
    const mine = this.events.filter((e) => e.iteration === iteration);
    const start = mine.find((e) => e.type === 'iteration.start');
    const end = mine.find((e): e is Extract<Ev, { type: 'iteration.end' }> => e.type === 'iteration.end');
    if (!start || !end) throw new Error(`iteration ${iteration} has not ended`);
    const stages: Partial<Record<Stage, number>> = {};
    let pushEndedAt: number | undefined;
    let readyEndedAt: number | undefined;
    for (const e of mine) {
      if (e.type !== 'stage.end') continue;
      stages[e.stage] = e.ms;
      if (e.stage === 'push') pushEndedAt = e.time;
      if (e.stage === 'ready' && e.ok) readyEndedAt = e.time;
    }
    const servingAt = end.result === 'deployed' ? (readyEndedAt ?? end.time) : undefined;
    return {
      iteration,
      result: end.result,
      ms: end.ms,
      startedAt: start.time,
      endedAt: end.time,
      ...(pushEndedAt !== undefined ? { pushEndedAt } : {}),
      ...(servingAt !== undefined ? { servingAt } : {}),
      stages,
      bytesPushed: end.bytesPushed ?? 0,
      blobsPushed: end.blobsPushed ?? 0,
      blobsSkipped: end.blobsSkipped ?? 0,
      ...(end.error ? { error: `${end.error.code}: ${end.error.message}` } : {}),
    };
  }

  /** How many times one kind of stage.end was emitted in an iteration (nested stages show as 2). */
  stageEnds(iteration: number, stage: Stage): number {
    return this.events.filter((e) => e.iteration === iteration && e.type === 'stage.end' && e.stage === stage).length;
  }

  stop(): Promise<void> {
    return this.children.stop(this.child);
  }

  /** Whether the daemon exited (by itself or after stop). */
  get hasExited(): boolean {
    return this.exited;
  }
}

/** The body the front port serves now, or the error. */
export async function served(port: number): Promise<string> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
    return (await response.text()).trim();
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}
