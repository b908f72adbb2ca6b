// Where a dev-loop iteration (or `tsko deploy`) sends a pushed image: the local target runs it on
// this machine; Kubernetes and Cloud Run targets roll it out remotely. One interface in two steps
// — the target's own call, then the wait for the new revision — so the loop times `deploy` and
// `ready` as two stages one after the other, and does not know which target it drives. A target
// that has the image's bytes already (the local one) may start before the push has finished.
import type { EventBus } from '../events.js';
import type { Image, RunnableImage } from '../image/types.js';

export type TargetKind = 'local' | 'kubernetes' | 'cloudrun';

export interface DeployRequest {
  /** The service name (the import path's base name), e.g. `hello`. */
  service: string;
  /** The dev loop's iteration number (1 for a one-shot deploy). */
  iteration: number;
  /** The pushed image by digest: `registry/repo@sha256:…`. */
  reference: string;
  /** The Go import path the image was built from (resolves `ko://` references in manifests). */
  importPath: string;
  /** The image value itself (its layers open their own bytes), so a local target need not pull what it just built. */
  image: Image;
  /** Events carry service and iteration already. */
  events: EventBus;
  /** Aborted when a newer save supersedes this iteration, on a config change, or on shutdown. */
  signal: AbortSignal;
}

export interface DeployResult {
  /** The new revision's name, e.g. `hello-00003`. */
  revision: string;
  /** Where the service answers now. */
  url?: string;
}

/**
 * A deploy started before the image is pushed, perhaps before its top layer is even packed (see
 * Target.deployBeforePush): the revision runs `runnable`, and the reference comes with the push.
 */
export interface EarlyDeployRequest extends Omit<DeployRequest, 'reference' | 'image'> {
  runnable: RunnableImage;
  /** Resolves to the pushed image's reference once every blob and the manifest are in; rejects when the push fails. */
  pushed: Promise<string>;
}

/** A rollout the target has started: waiting on it is the `ready` stage. */
export interface Rollout {
  /**
   * Resolves once the new revision serves. On failure it throws a TskoError and the previous
   * revision keeps serving. Always called once after a successful deploy(), even when the
   * iteration was aborted meanwhile (it then rejects at once and releases what deploy() holds).
   */
  ready(): Promise<DeployResult>;
  /**
   * For a rollout that may serve before its push has ended (deployBeforePush): settles once the
   * push's outcome has been applied — the previous revision retired, or, when the push failed,
   * the previous revision serving again and the new one stopped. Absent: nothing to wait for.
   */
  settled?(): Promise<void>;
}

export interface PreflightRequest {
  service: string;
  importPath: string;
  events: EventBus;
  signal: AbortSignal;
}

export interface Target {
  readonly kind: TargetKind;
  /**
   * The target's own call: the local target unpacks the image and starts the revision, Kubernetes
   * patches (or applies), Cloud Run updates the service. It does not wait for the revision to serve.
   */
  deploy(request: DeployRequest): Promise<Rollout>;
  /**
   * Only for a target that runs the image from its own bytes on this machine (the local target):
   * starts the new revision while the layer is packed and pushed, so a save serves without waiting
   * for bytes the target has already. Its ready() switches to the revision as soon as it answers;
   * the previous revision is kept until `pushed` settles, then retired — or, when the push failed,
   * switched back to, so an iteration never ends serving an image the registry does not hold in
   * full (see Rollout.settled). A push that fails before the revision answers means no switch.
   */
  deployBeforePush?(request: EarlyDeployRequest): Promise<Rollout>;
  /**
   * Remote targets only: checks, before the first build, that a deploy can succeed (context or
   * project reachable, credentials valid, the Deployment/service and container exist or can be
   * created, permission to patch). Emits a `preflight` event, and throws a TskoError whose message
   * is one line and whose hint is the fix. Cheap enough to run once per session.
   */
  preflight?(request: PreflightRequest): Promise<void>;
  /** Stops what the target started (local revisions, proxies); idempotent. */
  close(): Promise<void>;
}
