// One service in `tsko dev`: collects the saves that concern it, starts an iteration after a short
// trailing debounce, and lets the latest save win — a save during an iteration aborts it (go
// build's process tree, the upload, the deploy call) and starts over. The iteration itself is
// runIteration's; this file decides when one starts, and stops one when the session says so
// (a config reload, shutdown).
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Target } from '../deploy/target.js';
import type { ResolvedTarget } from '../publish/builder.js';
import type { Pipeline } from '../publish/pipeline.js';
import { runIteration, type IterationOutcome } from './iteration.js';

export interface ServiceLoopOptions {
  name: string;
  resolved: ResolvedTarget;
  /** The session's current pipeline and target: a config reload replaces them between iterations. */
  pipeline: () => Pipeline;
  target: () => Target;
  events: EventBus;
  /** Quiet time after the last save before building (bursts become one build). */
  debounceMs: number;
  /** The clock saves are timed with (performance.now() by default; tests pass a mocked one). */
  now?: () => number;
}

/** Events in one burst from which it counts as a storm rather than a save. */
const STORM_EVENTS = 4;
/** Events this soon after a build started mean the burst is still going on. */
const STORM_WINDOW_MS = 250;
/** The quiet period that ends a storm. */
const STORM_QUIET_MS = 150;

interface Running {
  iteration: number;
  controller: AbortController;
  done: Promise<void>;
}

export class ServiceLoop {
  readonly name: string;
  private readonly options: ServiceLoopOptions;
  private resolved: ResolvedTarget;
  private iteration = 0;
  private pendingFiles = new Set<string>();
  /** File events since the last iteration started (a Set of paths cannot count a storm on one file). */
  private burstEvents = 0;
  private lastStartAt = Number.NEGATIVE_INFINITY;
  private firstChangeAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Running | undefined;
  /** Every iteration not yet ended; a superseded one may still be unwinding after the newest started. */
  private readonly inflight = new Set<Promise<void>>();
  /** What the deployed revision runs (see runtimeIdentity). */
  private deployedIdentity: string | undefined;
  private closed = false;
  /** While paused, saves are collected but not built (the dashboard's `p` key). */
  private paused = false;
  /** While held (a config reload in progress), saves are collected and nothing starts. */
  private held = false;
  /** Called after every iteration ends; the session recomputes the watch scope then. */
  onIterationEnd: (outcome: IterationOutcome) => void = () => {};

  private readonly now: () => number;

  constructor(options: ServiceLoopOptions) {
    this.now = options.now ?? (() => performance.now());
    this.name = options.name;
    this.options = options;
    this.resolved = options.resolved;
  }

  get importPath(): string {
    return this.resolved.pkg.importPath;
  }

  get mainDir(): string {
    return this.resolved.pkg.dir;
  }

  get goCwd(): string {
    return this.resolved.cwd;
  }

  /** What the service builds from now on (a config reload re-resolves it). */
  updateResolved(resolved: ResolvedTarget): void {
    this.resolved = resolved;
  }

  /** Forgets what serves, so the next build deploys even if it is the same program (a new target). */
  forgetServing(): void {
    this.deployedIdentity = undefined;
  }

  /**
   * Stops the running iteration, if any (it ends `cancelled`), waits until it has ended, and holds
   * new ones until release(): saves meanwhile are kept and built then. The session holds every
   * loop before it closes the pipeline the iterations use.
   */
  async hold(reason: string): Promise<void> {
    this.held = true;
    this.running?.controller.abort(new TskoError('ABORTED', reason));
    await this.allEnded();
  }

  /** Every iteration still running has ended: the newest, and any superseded one still unwinding. */
  private async allEnded(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all(this.inflight);
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.pendingFiles.size > 0 && !this.paused && !this.closed) this.schedule();
  }

  /** A save (or several) that concerns this service. */
  changed(files: string[], at: number): void {
    if (this.closed) return;
    for (const file of files) this.pendingFiles.add(file);
    this.burstEvents += 1;
    this.firstChangeAt ??= at;
    if (this.paused) {
      this.options.events.emit({ type: 'watch', service: this.name, paused: true, queued: [...this.pendingFiles] });
      return;
    }
    this.schedule();
  }

  /** Build now (first iteration, the `r` key, a config change), even while paused. */
  rebuild(reason: string): void {
    if (this.closed) return;
    this.pendingFiles.add(reason);
    this.firstChangeAt ??= this.now();
    this.schedule();
  }

  /**
   * Pause or resume reacting to saves. Pausing never stops a running iteration; the saves that
   * arrive meanwhile are kept, and resuming builds them as one change (the latest state of the
   * files is what gets built, so nothing is lost by waiting).
   */
  setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (!paused && this.pendingFiles.size > 0 && !this.timer && !this.closed) {
      // Save → serving counts from the resume: the time spent paused was the user's choice.
      this.firstChangeAt = this.now();
      this.schedule();
    }
  }

  get isPaused(): boolean {
    return this.paused;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.quietPeriod());
  }

  /**
   * A save is one or two file events (editors truncate, then write): those start a build after the
   * short debounce. A storm (a git checkout, a code generator, a formatter over the tree) keeps
   * sending events, possibly with short gaps on a loaded machine, and every build started in it
   * would be cancelled by the next event; so once a burst is recognised — several events, or
   * events right after a build started — tsko waits for a longer quiet period instead.
   */
  private quietPeriod(): number {
    const stormy = this.burstEvents >= STORM_EVENTS || this.now() - this.lastStartAt < STORM_WINDOW_MS;
    return stormy ? Math.max(this.options.debounceMs, STORM_QUIET_MS) : this.options.debounceMs;
  }

  private start(): void {
    this.timer = undefined;
    if (this.held) return; // release() schedules the saves kept meanwhile
    this.burstEvents = 0;
    this.lastStartAt = this.now();
    const files = [...this.pendingFiles];
    const since = this.firstChangeAt ?? this.now();
    this.pendingFiles.clear();
    this.firstChangeAt = undefined;
    // Latest save wins: abort what is running; it will not deploy.
    this.running?.controller.abort(new TskoError('ABORTED', 'superseded by a newer save'));
    const iteration = ++this.iteration;
    const controller = new AbortController();
    const done: Promise<void> = this.run(iteration, files, since, controller.signal).finally(() => {
      if (this.running?.iteration === iteration) this.running = undefined;
      this.inflight.delete(done);
    });
    this.inflight.add(done);
    this.running = { iteration, controller, done };
  }

  private async run(iteration: number, trigger: string[], since: number, signal: AbortSignal): Promise<void> {
    const outcome = await runIteration({
      service: this.name,
      iteration,
      trigger,
      since,
      now: this.now,
      target: this.resolved,
      pipeline: this.options.pipeline(),
      deployTo: this.options.target(),
      serving: this.deployedIdentity,
      events: this.options.events,
      signal,
    });
    if (outcome.identity !== undefined) this.deployedIdentity = outcome.identity;
    try {
      this.onIterationEnd(outcome);
    } catch {
      // The session's bookkeeping must not break the loop.
    }
  }

  /** Abort any iteration and stop scheduling new ones. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.running?.controller.abort(new TskoError('ABORTED', 'shutting down'));
    await this.allEnded();
  }

  /** Resolves when no iteration is running or scheduled (tests, the session's idle()). */
  async idle(): Promise<void> {
    while (this.running || this.timer) {
      await (this.running?.done ?? new Promise((resolve) => setTimeout(resolve, this.options.debounceMs)));
    }
  }
}
