// One iteration of the loop, for `tsko dev` (every save) and `tsko deploy` (once): build, skip
// everything when the program is the one serving, push, deploy, wait until it serves. Each stage
// runs through `stage()`, so its `ok` is its real outcome. `deploy` is the target's own call and
// `ready` the wait after it; for a target that runs the image from its own bytes (the local one)
// `deploy` runs alongside `push`, and `ready` comes after both. The iteration ends with one result:
// deployed, unchanged, build-, push- or deploy-failed, or cancelled when its signal aborted.
import { throwIfAborted } from '../abort.js';
import { TskoError, isAbortError, toErrorInfo } from '../errors.js';
import { withFields, type ErrorInfo, type EventBus, type IterationResult } from '../events.js';
import { linkIdentity } from '../go/buildid.js';
import { sha256 } from '../image/digest.js';
import type { Image } from '../image/types.js';
import type { Rollout, Target } from '../deploy/target.js';
import type { ResolvedTarget } from '../publish/builder.js';
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
  const { service, iteration, signal } = request;
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
  try {
    // A save changed the sources: nothing built or pushed before may be reused.
    request.pipeline.invalidate(request.target.pkg.importPath);
    const built = await request.pipeline.build(request.target, { events, signal });
    // The loop builds the one platform its target runs.
    const image = built.images[0];
    if (!image || built.index) throw new TskoError('INTERNAL', `an iteration builds one platform, got ${built.images.length}`);
    const identity = runtimeIdentity(image.image, image.buildId);
    if (identity === request.serving) {
      outcome.result = 'unchanged';
      return finish();
    }

    // Superseded meanwhile: a newer save's image is what must go out, not this one.
    throwIfAborted(signal);
    outcome.result = 'push-failed';
    const publishing = request.pipeline.publisher.publish(built, { events, signal });
    const deployRequest = { service, iteration, importPath: built.importPath, image: image.image, events, signal };
    const { deployTo } = request;
    let rollout: Rollout;
    if (deployTo.deployBeforePush) {
      // The revision starts while the push runs; it serves only once the push is complete.
      publishing.catch(() => undefined);
      const pushedReference = publishing.then((published) => published.reference);
      pushedReference.catch(() => undefined);
      const early = deployTo.deployBeforePush.bind(deployTo);
      const deploying = stage(events, 'deploy', () => early({ ...deployRequest, pushed: pushedReference }), {}, signal);
      deploying.catch(() => undefined);
      // The push's outcome comes first: a failed push is the iteration's result whatever the deploy did.
      const published = await publishing.catch(async (err: unknown) => {
        await deploying.then((started) => started.ready()).catch(() => undefined);
        throw err;
      });
      outcome.reference = published.reference;
      pushed = published.stats;
      outcome.result = 'deploy-failed';
      rollout = await deploying;
    } else {
      const published = await publishing;
      outcome.reference = published.reference;
      pushed = published.stats;
      outcome.result = 'deploy-failed';
      throwIfAborted(signal);
      rollout = await stage(events, 'deploy', () => deployTo.deploy({ ...deployRequest, reference: published.reference }), {}, signal);
    }
    const deployed = await stage(events, 'ready', () => rollout.ready(), {}, signal);
    Object.assign(outcome, { result: 'deployed', identity, revision: deployed.revision, ...(deployed.url ? { url: deployed.url } : {}) });
  } catch (err) {
    if (signal.aborted || isAbortError(err)) {
      outcome.result = 'cancelled';
    } else {
      outcome.error = toErrorInfo(err);
      outcome.failure = err;
    }
  }
  return finish();

  function finish(): IterationOutcome {
    const ms = now() - since;
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
