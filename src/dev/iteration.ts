// One iteration of the loop, for `tsko dev` (every save) and `tsko deploy` (once): build, skip
// everything when the program is the one serving, push, deploy, wait until it serves. Each stage
// runs through `stage()`, so its `ok` is its real outcome. `deploy` is the target's own call and
// `ready` the wait after it. For a target that runs the image from its own bytes (the local one)
// `deploy` starts as soon as the binary is built and `ready` follows at once, alongside the layer
// and the push: the save serves before the push ends, and the iteration ends when both have (a
// failed push puts the previous revision back). The iteration ends with one result: deployed,
// unchanged, build-, push- or deploy-failed, or cancelled when its signal aborted.
import { throwIfAborted } from '../abort.js';
import { TskoError, isAbortError, toErrorInfo } from '../errors.js';
import { withFields, type ErrorInfo, type EventBus, type IterationResult } from '../events.js';
import { linkIdentity } from '../go/buildid.js';
import { sha256 } from '../image/digest.js';
import { runnableOf } from '../image/assemble.js';
import type { ContainerConfig, Image, Layer, RunnableImage } from '../image/types.js';
import type { DeployResult, Rollout, Target } from '../deploy/target.js';
import type { BuiltBinary, ResolvedTarget } from '../publish/builder.js';
import type { Pipeline } from '../publish/pipeline.js';
import { NOTHING_PUSHED, type PublishStats } from '../publish/publisher.js';
import { stage } from '../stage.js';

export interface IterationRequest {
  service: string;
  iteration: number;
  /** What started it: the changed files, or a word (`start`, `r`, `deploy`). */
  trigger: string[];
  /** When the first save it answers came (on `now`'s clock); the `trigger` stage is the wait from then. */
  since?: number;
  /** The clock (default performance.now()). */
  now?: () => number;
  target: ResolvedTarget;
  pipeline: Pick<Pipeline, 'build' | 'publisher' | 'invalidate'>;
  deployTo: Target;
  /** The runtime identity of what serves now: a build with the same one is `unchanged`. */
  serving?: string | undefined;
  /** The command's bus; the iteration adds its service and number to every event. */
  events: EventBus;
  signal: AbortSignal;
}

export interface IterationOutcome {
  result: IterationResult;
  /** Save → serving (or → the failure), in ms. */
  ms: number;
  /** The runtime identity now serving, when this iteration deployed it. */
  identity?: string;
  reference?: string;
  revision?: string;
  url?: string;
  error?: ErrorInfo;
  /** The error itself (with its stack and cause), for a caller that exits with it. */
  failure?: unknown;
}

export async function runIteration(request: IterationRequest): Promise<IterationOutcome> {
  const { service, iteration, signal, deployTo } = request;
  const events = withFields(request.events, { service, iteration });
  const now = request.now ?? (() => performance.now());
  const started = now();
  const since = request.since ?? started;
  events.emit({ type: 'iteration.start', trigger: request.trigger });
  if (request.since !== undefined) {
    events.emit({ type: 'stage.start', stage: 'trigger' });
    events.emit({ type: 'stage.end', stage: 'trigger', ms: started - since, ok: true });
  }
  const outcome: Omit<IterationOutcome, 'ms'> = { result: 'build-failed' };
  let pushed: PublishStats = NOTHING_PUSHED;
  let servingAt: number | undefined;
  // A target that runs the image from its own bytes starts the revision as soon as the binary is
  // built; the push's reference (or failure) reaches it through `pushedReference`.
  const early = deployTo.deployBeforePush ? new EarlyDeploy(deployTo, request.serving, { service, iteration, events, signal }, now) : undefined;
  try {
    // A save changed the sources: nothing built or pushed before may be reused.
    request.pipeline.invalidate(request.target.pkg.importPath);
    const onBinary = early ? (binary: BuiltBinary) => early.onBinary(binary, request.target.pkg.importPath) : undefined;
    const built = await request.pipeline.build(request.target, { events, signal, ...(onBinary ? { onBinary } : {}) });
    // The loop builds the one platform its target runs.
    const image = built.images[0];
    if (!image || built.index) throw new TskoError('INTERNAL', `an iteration builds one platform, got ${built.images.length}`);
    const identity = runtimeIdentity(image.image, image.buildId);
    if (early?.identity !== undefined && early.identity !== identity) {
      throw new TskoError('INTERNAL', `the revision started from ${built.importPath}'s binary does not match its image`);
    }
    if (identity === request.serving) {
      outcome.result = 'unchanged';
      return finish();
    }

    // Superseded meanwhile: a newer save's image is what must go out, not this one.
    throwIfAborted(signal);
    outcome.result = 'push-failed';
    const publishing = request.pipeline.publisher.publish(built, { events, signal });
    const deployRequest = { service, iteration, importPath: built.importPath, events, signal };
    if (early) {
      early.pushedWith(publishing.then((published) => published.reference));
      const serving = early.serving ?? early.start(runnableOf(image.image), built.importPath);
      // The push's outcome comes first: a failed push is the iteration's result whatever the deploy did.
      const [published, deployed] = await Promise.allSettled([publishing, serving.then(({ result, at }) => ((servingAt = at), result))]);
      await early.settled();
      if (published.status === 'rejected') throw published.reason;
      outcome.reference = published.value.reference;
      pushed = published.value.stats;
      outcome.result = 'deploy-failed';
      if (deployed.status === 'rejected') throw deployed.reason;
      Object.assign(outcome, { result: 'deployed', identity, revision: deployed.value.revision, ...(deployed.value.url ? { url: deployed.value.url } : {}) });
    } else {
      const published = await publishing;
      outcome.reference = published.reference;
      pushed = published.stats;
      outcome.result = 'deploy-failed';
      throwIfAborted(signal);
      const rollout = await stage(events, 'deploy', () => deployTo.deploy({ ...deployRequest, image: image.image, reference: published.reference }), {}, signal);
      const deployed = await stage(events, 'ready', () => rollout.ready(), {}, signal);
      Object.assign(outcome, { result: 'deployed', identity, revision: deployed.revision, ...(deployed.url ? { url: deployed.url } : {}) });
    }
  } catch (err) {
    if (signal.aborted || isAbortError(err)) {
      outcome.result = 'cancelled';
    } else {
      outcome.error = toErrorInfo(err);
      outcome.failure = err;
    }
    // A revision started from the binary of a build that failed afterwards is released.
    await early?.abandon(err);
  }
  return finish();

  function finish(): IterationOutcome {
    // A deployed iteration's time is save → serving (its push may have ended a little later).
    const ms = (outcome.result === 'deployed' && servingAt !== undefined ? servingAt : now()) - since;
    const { reference, revision, url, error } = outcome;
    events.emit({
      type: 'iteration.end',
      result: outcome.result,
      ms,
      ...(reference ? { reference } : {}),
      ...(revision ? { revision } : {}),
      ...(url ? { url } : {}),
      bytesPushed: pushed.bytesPushed,
      blobsPushed: pushed.blobsPushed,
      blobsSkipped: pushed.blobsSkipped,
      ...(error ? { error } : {}),
    });
    return { ...outcome, ms };
  }
}

/** A revision switched to: its rollout, what it says, and when (on the iteration's clock). */
interface Serving {
  rollout: Rollout;
  result: DeployResult;
  at: number;
}

/**
 * The deploy of a target that runs the image from its own bytes (Target.deployBeforePush), started
 * from the binary before its layer is packed — or, when the builder offered none (the binary's
 * layer was reused), from the built image — and waited on (`ready`) at once, so the revision
 * serves as soon as it answers. The push's reference, or its failure, reaches the target later.
 */
class EarlyDeploy {
  /** The runtime identity of what was started from the binary (compared with the built image's). */
  identity: string | undefined;
  /** The `ready` stage: resolves once the revision serves. */
  serving: Promise<Serving> | undefined;
  private readonly reference: Promise<string>;
  private settle!: { resolve: (reference: string) => void; reject: (err: unknown) => void };
  private attached = false;

  constructor(
    private readonly target: Target,
    private readonly servingIdentity: string | undefined,
    private readonly request: { service: string; iteration: number; events: EventBus; signal: AbortSignal },
    private readonly now: () => number,
  ) {
    this.reference = new Promise<string>((resolve, reject) => (this.settle = { resolve, reject }));
    // Observed here: a failed push is reported by the iteration, not as an unhandled rejection.
    this.reference.catch(() => undefined);
  }

  /**
   * The binary is built: start its revision now, unless it is the program already serving. What it
   * returns settles once the revision serves (or failed to): the builder packs the layer only
   * then, so the revision's start has the machine to itself.
   */
  onBinary(binary: BuiltBinary, importPath: string): Promise<unknown> | undefined {
    const identity = identityOf(binary.runnable.lower, linkIdentity(binary.buildId), binary.runnable.config.config);
    if (identity === this.servingIdentity || this.request.signal.aborted || this.serving) return undefined;
    this.identity = identity;
    return this.start(binary.runnable, importPath).catch(() => undefined);
  }

  /** Starts the deploy and, once it is started, the wait until it serves (`serving`). */
  start(runnable: RunnableImage, importPath: string): Promise<Serving> {
    const deployBeforePush = this.target.deployBeforePush?.bind(this.target);
    if (!deployBeforePush) throw new TskoError('INTERNAL', 'the target cannot deploy before the push');
    const { events, signal } = this.request;
    const deploying = stage(events, 'deploy', () => deployBeforePush({ ...this.request, importPath, runnable, pushed: this.reference }), {}, signal);
    const serving = deploying.then(async (rollout) => {
      const result = await stage(events, 'ready', () => rollout.ready(), {}, signal);
      return { rollout, result, at: this.now() };
    });
    serving.catch(() => undefined);
    this.serving = serving;
    return serving;
  }

  /** The push has started: its reference, or its failure, goes to the target. */
  pushedWith(reference: Promise<string>): void {
    this.attached = true;
    reference.then(this.settle.resolve, this.settle.reject);
  }

  /** Once the push has settled, the target has retired the revision before, or gone back to it. */
  async settled(): Promise<void> {
    const started = await this.serving?.catch(() => undefined);
    await started?.rollout.settled?.().catch(() => undefined);
  }

  /** The iteration failed before its push started: a revision started early is told so and released. */
  async abandon(err: unknown): Promise<void> {
    if (!this.serving) return;
    if (!this.attached) this.settle.reject(err);
    await this.serving.catch(() => undefined);
    await this.settled();
  }
}

/**
 * What a revision would run: every layer but the binary, the runtime config, and the binary's link
 * identity (its build ID without the main package's part, which a comment edit changes without
 * changing the program). Equal identities mean a redeploy would change nothing.
 */
export function runtimeIdentity(image: Image, buildId: string | undefined): string {
  const top = image.layers.at(-1)?.digest;
  return identityOf(image.layers.slice(0, -1), buildId ? linkIdentity(buildId) : top, image.config.config);
}

function identityOf(lower: readonly Layer[], binary: string | undefined, config: ContainerConfig | undefined): string {
  return sha256(JSON.stringify({ layers: lower.map((layer) => layer.digest), binary, config: config ?? {} }));
}
