// One service in `tsko dev`: collects the saves that concern it, starts an iteration after a short
// trailing debounce, and lets the latest save win — a save during an iteration aborts it (go
// build's process tree, the upload, the deploy call) and starts over. Each iteration builds,
// skips everything when the binary is unchanged, pushes only new blobs, and deploys.
import { TskoError, isAbortError, toTskoError } from '../errors.js';
import { withFields, type EventBus, type ErrorInfo, type IterationResult } from '../events.js';
import { linkIdentity } from '../go/buildid.js';
import type { Image, Platform } from '../image/types.js';
import { sha256 } from '../image/digest.js';
import type { LayerBytes } from '../image/layout.js';
import type { Target } from '../deploy/target.js';
import type { ResolvedTarget } from '../publish/builder.js';
import type { Pipeline } from '../publish/pipeline.js';
import { parseRepository, type Repository } from '../registry/reference.js';
import { imageName, type NamingMode } from '../publish/naming.js';

export interface ServiceLoopOptions {
  name: string;
  resolved: ResolvedTarget;
  pipeline: () => Pipeline;
  target: Target;
  dockerRepo: string;
  naming: NamingMode;
  platform: Platform;
  events: EventBus;
  /** Quiet time after the last save before building (bursts become one build). */
  debounceMs: number;
  /** Called after each successful push, off the critical path (registry retention). */
  afterPush?: (repository: Repository) => void;
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

export interface IterationOutcome {
  result: IterationResult;
  reference?: string;
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
  /** What the deployed revision runs (see runtimeIdentity). */
  private deployedIdentity: string | undefined;
  private closed = false;
  /** While paused, saves are collected but not built (the dashboard's `p` key). */
  private paused = false;
  /** Resolves after every iteration ends; the session recomputes the watch scope then. */
  onIterationEnd: (outcome: IterationOutcome) => void = () => {};

  constructor(options: ServiceLoopOptions) {
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

  updateResolved(resolved: ResolvedTarget): void {
    this.resolved = resolved;
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
    this.firstChangeAt ??= performance.now();
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
      this.firstChangeAt = performance.now();
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
    const stormy = this.burstEvents >= STORM_EVENTS || performance.now() - this.lastStartAt < STORM_WINDOW_MS;
    return stormy ? Math.max(this.options.debounceMs, STORM_QUIET_MS) : this.options.debounceMs;
  }

  private start(): void {
    this.timer = undefined;
    this.burstEvents = 0;
    this.lastStartAt = performance.now();
    const files = [...this.pendingFiles];
    const since = this.firstChangeAt ?? performance.now();
    this.pendingFiles.clear();
    this.firstChangeAt = undefined;
    // Latest save wins: abort what is running; it will not deploy.
    this.running?.controller.abort(new TskoError('ABORTED', 'superseded by a newer save'));
    const iteration = ++this.iteration;
    const controller = new AbortController();
    const done = this.runIteration(iteration, files, since, controller.signal).finally(() => {
      if (this.running?.iteration === iteration) this.running = undefined;
    });
    this.running = { iteration, controller, done };
  }

  private async runIteration(iteration: number, files: string[], since: number, signal: AbortSignal): Promise<void> {
    const events = withFields(this.options.events, { service: this.name, iteration });
    const startedAt = performance.now();
    events.emit({ type: 'iteration.start', trigger: files });
    events.emit({ type: 'stage.start', stage: 'trigger' });
    events.emit({ type: 'stage.end', stage: 'trigger', ms: startedAt - since, ok: true });
    let result: IterationResult = 'build-failed';
    let reference: string | undefined;
    let revision: string | undefined;
    let url: string | undefined;
    let error: ErrorInfo | undefined;
    const pushed = { bytesPushed: 0, blobsPushed: 0, blobsSkipped: 0 };
    try {
      const pipeline = this.options.pipeline();
      const built = await pipeline.builder.build(this.resolved, this.options.platform, signal, events);
      const identity = runtimeIdentity(built.image, built.buildId);
      if (identity === this.deployedIdentity) {
        result = 'unchanged';
        return;
      }

      result = 'push-failed';
      const repository = parseRepository(imageName(this.options.dockerRepo, built.importPath, this.options.naming));
      events.emit({ type: 'stage.start', stage: 'push', importPath: built.importPath });
      const pushStarted = performance.now();
      const published = await pipeline.publisher.publish(built.image, repository, ['latest'], signal, events).finally(() => {
        events.emit({ type: 'stage.end', stage: 'push', importPath: built.importPath, ms: performance.now() - pushStarted, ok: !signal.aborted });
      });
      reference = published.reference;
      Object.assign(pushed, { bytesPushed: published.stats.bytesPushed, blobsPushed: published.stats.blobsPushed, blobsSkipped: published.stats.blobsSkipped });
      events.emit({ type: 'published', importPath: built.importPath, reference, ...pushed });
      this.options.afterPush?.(repository);

      result = 'deploy-failed';
      if (signal.aborted) throw new TskoError('ABORTED', 'superseded by a newer save');
      const layerBytes: LayerBytes = (layer) =>
        layer.source.kind === 'memory'
          ? Promise.resolve(layer.source.data)
          : pipeline.client.getBlob({ registry: layer.source.registry, repository: layer.source.repository }, layer.digest, signal);
      events.emit({ type: 'stage.start', stage: 'deploy' });
      const deployStarted = performance.now();
      const deployed = await this.options.target
        .deploy({ service: this.name, iteration, reference, importPath: built.importPath, image: built.image, layerBytes, events, signal })
        .finally(() => events.emit({ type: 'stage.end', stage: 'deploy', ms: performance.now() - deployStarted, ok: !signal.aborted }));
      revision = deployed.revision;
      url = deployed.url;
      this.deployedIdentity = identity;
      result = 'deployed';
    } catch (err) {
      if (signal.aborted || isAbortError(err)) {
        result = 'cancelled';
      } else {
        const e = toTskoError(err);
        error = { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...(e.detail ? { detail: e.detail } : {}) };
      }
    } finally {
      events.emit({
        type: 'iteration.end',
        result,
        ms: performance.now() - since,
        ...(reference ? { reference } : {}),
        ...(revision ? { revision } : {}),
        ...(url ? { url } : {}),
        ...pushed,
        ...(error ? { error } : {}),
      });
      this.onIterationEnd({ result, ...(reference ? { reference } : {}) });
    }
  }

  /** Abort any iteration and stop scheduling new ones. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const running = this.running;
    running?.controller.abort(new TskoError('ABORTED', 'shutting down'));
    await running?.done.catch(() => undefined);
  }

  /** Resolves when no iteration is running or scheduled (tests, one-shot deploys). */
  async idle(): Promise<void> {
    while (this.running || this.timer) {
      await (this.running?.done ?? new Promise((resolve) => setTimeout(resolve, this.options.debounceMs)));
    }
  }
}

/**
 * What a revision would run: every layer but the binary, the runtime config, and the binary's link
 * identity (its build ID without the main package's part, which a comment edit changes without
 * changing the program). Equal identities mean a redeploy would change nothing.
 */
export function runtimeIdentity(image: Image, buildId: string | undefined): string {
  const layers = image.layers.map((layer) => layer.digest);
  const binary = buildId ? linkIdentity(buildId) : layers[layers.length - 1];
  return sha256(JSON.stringify({ layers: layers.slice(0, -1), binary, config: image.config.config ?? {} }));
}
