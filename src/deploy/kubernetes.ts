// The Kubernetes target: each deploy sets the new image (by digest) on one container of a
// Deployment with a strategic merge patch — or, in manifests mode, server-side applies the
// config's YAML with its ko:// references resolved — then waits until the rollout is done as
// `kubectl rollout status` decides, failing early (with the pods' reason and a crash's last log
// lines) when a new pod is in a state that will not cure itself. The Deployment's old pods keep
// serving a failed rollout, as a RollingUpdate does.
import { throwIfAborted } from '../abort.js';
import { TskoError, isAbortError } from '../errors.js';
import type { EventBus } from '../events.js';
import { KubeApiError, KubeClient, KubeError } from './kube-client.js';
import type { KubeConfigOptions, KubeConnection } from './kube-config.js';
import { resolveManifests, type ManifestObject } from './kube-manifests.js';
import { diagnosePods, rolloutBlocker, rolloutStatus, type Deployment, type Pod, type PodProblem } from './kube-rollout.js';
import { deploymentPath, getDeployment, pickContainer, resourceOf, type ResourceInfo } from './kube-objects.js';
import { preflightDeployment, preflightManifests } from './kube-preflight.js';
import { deploymentUpdates } from './kube-watch.js';
import { assertRegistryReachable } from './loopback.js';
import type { DeployRequest, DeployResult, Rollout, Target } from './target.js';

export const FIELD_MANAGER = 'tsko';

export interface KubernetesTargetOptions {
  kubeconfig: KubeConfigOptions;
  /** The Deployment to patch (default: the service name). */
  deployment?: string;
  /** The container to patch; needed when the Deployment has several and none is named like the service. */
  container?: string;
  /** Manifests mode: absolute paths of YAML files with ko:// references. */
  manifests?: string[];
  /** How long a rollout may take (default 300 s). */
  timeoutMs?: number;
  /**
   * The newest pushed reference of each import path in this process, shared by the targets of one
   * session, so a manifest that names two services' images resolves both.
   */
  references?: Map<string, string>;
  events: EventBus;
}

export interface KubernetesTarget extends Target {
  readonly kind: 'kubernetes';
  /** The API server URL of the selected context (reads the kubeconfig). */
  server(): Promise<string>;
}

const DEFAULT_TIMEOUT_MS = 300_000;
/** After this long without a finished rollout, the new pods are looked at for a reason. */
const DIAGNOSE_AFTER_MS = 1500;
const LOG_LINES = 20;

export function createKubernetesTarget(options: KubernetesTargetOptions): KubernetesTarget {
  const client = new KubeClient(options.kubeconfig);
  const references = options.references ?? new Map<string, string>();
  const resources = new Map<string, ResourceInfo>();
  return {
    kind: 'kubernetes',
    server: async () => (await client.connect()).server,
    async deploy(request) {
      let connection: KubeConnection;
      try {
        connection = await client.connect();
      } catch (err) {
        // A kubeconfig fixed while tsko dev runs is picked up on the next save.
        await client.reset();
        throw err;
      }
      assertRegistryReachable(
        request.reference,
        connection.server,
        `the cluster at ${connection.server}`,
        'set KO_DOCKER_REPO to a registry the cluster can pull from (e.g. REGION-docker.pkg.dev/PROJECT/REPO), or use a cluster on this machine',
      );
      const run = options.manifests && options.manifests.length > 0 ? applyManifests : patchDeployment;
      return run({ client, connection, options, request, references, resources });
    },
    async preflight(request) {
      const started = performance.now();
      const emit = (ok: boolean, message: string, reason?: string) =>
        request.events.emit({ type: 'preflight', target: 'kubernetes', service: request.service, ok, ms: Math.round(performance.now() - started), message, ...(reason ? { reason } : {}) });
      try {
        const connection = await client.connect();
        const ctx = {
          client,
          connection,
          service: request.service,
          importPath: request.importPath,
          deployment: options.deployment,
          container: options.container,
          manifests: options.manifests ?? [],
          resources,
          signal: request.signal,
        };
        emit(true, await (ctx.manifests.length > 0 ? preflightManifests(ctx) : preflightDeployment(ctx)));
      } catch (err) {
        if (isAbortError(err)) throw err;
        // A kubeconfig fixed after a failed check is read again by the next attempt.
        await client.reset();
        const reason = err instanceof KubeError ? err.reason : err instanceof TskoError && err.code === 'KUBE' ? 'KubeconfigInvalid' : undefined;
        emit(false, err instanceof Error ? err.message : String(err), reason);
        throw err;
      }
    },
    close: () => client.close(),
  };
}

interface DeployContext {
  client: KubeClient;
  connection: KubeConnection;
  options: KubernetesTargetOptions;
  request: DeployRequest;
  references: Map<string, string>;
  resources: Map<string, ResourceInfo>;
}

async function patchDeployment(ctx: DeployContext): Promise<Rollout> {
  const { client, connection, options, request } = ctx;
  const name = options.deployment ?? request.service;
  const namespace = connection.namespace;
  const path = deploymentPath(namespace, name);
  const current = await getDeployment(client, connection, name, request.signal, request.reference);
  const containers = current.spec.template.spec.containers;
  const container = pickContainer(containers.map((c) => c.name), options.container, request.service, `deployment "${name}" in namespace "${namespace}"`);

  // A strategic merge patch merges containers by name, so only the image of this one changes;
  // $setElementOrder keeps the list's order, as `kubectl set image` sends it.
  const patch = {
    spec: {
      template: {
        spec: {
          '$setElementOrder/containers': containers.map((c) => ({ name: c.name })),
          containers: [{ name: container, image: request.reference }],
        },
      },
    },
  };
  const body = JSON.stringify(patch);
  const patched = await client.json<Deployment>({
    method: 'PATCH',
    path,
    query: { fieldManager: FIELD_MANAGER },
    contentType: 'application/strategic-merge-patch+json',
    body,
    signal: request.signal,
  });
  request.events.emit({ type: 'rollout', target: 'kubernetes', message: `deployment/${name}: container ${container} set to ${request.reference}` });
  return { ready: () => waitForRollout(ctx, patched) };
}

/**
 * Follows the Deployment (a watch from the PATCH answer's resourceVersion) until kubectl would call
 * it rolled out; fails at once when the Deployment says it cannot (paused, ReplicaFailure, progress
 * deadline) or a new pod is in a state that will not cure itself, and at the timeout otherwise.
 */
async function waitForRollout(ctx: DeployContext, patched: Deployment): Promise<DeployResult> {
  const { client, connection, options, request } = ctx;
  const { events, signal } = request;
  const name = patched.metadata.name;
  const namespace = patched.metadata.namespace ?? connection.namespace;
  const minGeneration = patched.metadata.generation ?? 0;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = performance.now();
  const deadline = started + timeoutMs;
  let lastMessage = '';
  let nextDiagnosis = started + DIAGNOSE_AFTER_MS;
  let deployment: Deployment = { ...patched, metadata: { ...patched.metadata, namespace } };

  const stop = new AbortController();
  const updates = deploymentUpdates({
    client,
    namespace,
    name,
    ...(patched.metadata.resourceVersion ? { resourceVersion: patched.metadata.resourceVersion } : {}),
    signal: AbortSignal.any([signal, stop.signal]),
  });
  // Settled both ways, so an update that fails while nobody awaits it is not an unhandled rejection.
  const next = () => updates.next().then((result) => ({ result }), (error: unknown) => ({ error }));
  let pending = next();
  try {
    for (;;) {
      const blocker = rolloutBlocker(deployment, minGeneration);
      if (blocker) {
        const problem = blocker.reason === 'ProgressDeadlineExceeded' ? await podProblem(ctx, deployment, namespace) : undefined;
        throw await rolloutFailure(ctx, namespace, {
          reason: blocker.reason,
          message: `${blocker.message}${problem ? `: ${describeProblem(problem)}` : ''}`,
          ...(blocker.hint ? { hint: blocker.hint } : {}),
          problem,
        });
      }
      const status = rolloutStatus(deployment, minGeneration);
      if (status.message !== lastMessage) {
        lastMessage = status.message;
        events.emit({ type: 'rollout', target: 'kubernetes', message: status.message });
      }
      if (status.state === 'done') break;
      if (status.state === 'failed') throw await rolloutFailure(ctx, namespace, { reason: 'RolloutFailed', message: status.message, problem: await podProblem(ctx, deployment, namespace) });
      const now = performance.now();
      if (now >= deadline) {
        const problem = await podProblem(ctx, deployment, namespace);
        const progress = lastMessage.replace(/^Waiting for deployment "[^"]+" rollout to finish: /, '').replace(/\.\.\.$/, '');
        throw await rolloutFailure(ctx, namespace, {
          reason: problem?.reason ?? 'Timeout',
          message: `rollout of deployment "${name}" timed out after ${Math.round(timeoutMs / 1000)} s: ${problem ? describeProblem(problem) : progress}`,
          problem,
        });
      }
      if (now >= nextDiagnosis) {
        nextDiagnosis = now + DIAGNOSE_AFTER_MS;
        const problem = await podProblem(ctx, deployment, namespace);
        if (problem?.fatal) throw await rolloutFailure(ctx, namespace, { reason: problem.reason, message: `rollout of deployment "${name}" failed: ${describeProblem(problem)}`, problem });
      }
      const tick = timer(Math.max(0, Math.min(nextDiagnosis, deadline) - performance.now()));
      const update = await Promise.race([pending, tick.promise]);
      tick.cancel();
      throwIfAborted(signal);
      if (update === undefined) continue;
      if ('error' in update) throw update.error;
      if (update.result.done) throw new TskoError('INTERNAL', `the updates of deployment "${name}" ended`);
      deployment = update.result.value;
      deployment.metadata.namespace ??= namespace;
      pending = next();
    }
  } finally {
    stop.abort();
  }
  const revision = await newReplicaSet(ctx, deployment, namespace).catch((err: unknown) => {
    if (isAbortError(err)) throw err;
    return undefined;
  });
  events.emit({ type: 'rollout', target: 'kubernetes', message: `deployment "${name}" rolled out in ${Math.round(performance.now() - started)} ms${revision ? ` (replicaset ${revision})` : ''}` });
  return { revision: revision ?? `${name}@${deployment.metadata.generation ?? minGeneration}` };
}

/** A timer that resolves undefined, and can be cleared so a finished race leaves none behind. */
function timer(ms: number): { promise: Promise<undefined>; cancel(): void } {
  let handle: NodeJS.Timeout | undefined;
  const promise = new Promise<undefined>((resolve) => {
    handle = setTimeout(() => resolve(undefined), ms);
  });
  return { promise, cancel: () => clearTimeout(handle) };
}

function describeProblem(problem: PodProblem): string {
  return `pod ${problem.pod}${problem.container ? ` (container ${problem.container})` : ''}: ${problem.reason}${problem.message && problem.message !== problem.reason ? `: ${problem.message}` : ''}`;
}

interface RolloutFailure {
  /** The cluster's own reason (DeploymentPaused, FailedCreate, CrashLoopBackOff, ErrImagePull, …). */
  reason: string;
  message: string;
  hint?: string;
  problem: PodProblem | undefined;
}

/** Emits `rollout.failed` (with a crash's last log lines) and makes the iteration's error. */
async function rolloutFailure(ctx: DeployContext, namespace: string, failure: RolloutFailure): Promise<TskoError> {
  const { problem } = failure;
  let logs: string[] | undefined;
  if (problem?.wantsLogs && problem.container) logs = await lastLogLines(ctx, namespace, problem.pod, problem.container);
  const pull = problem && /ImagePull|ErrImage|InvalidImageName/.test(problem.reason);
  const hint =
    failure.hint ??
    (pull
      ? `the cluster cannot pull ${ctx.request.reference}: can its nodes reach that registry, with pull access?`
      : "the Deployment's previous pods keep serving; the next save rolls out again");
  ctx.request.events.emit({ type: 'rollout.failed', target: 'kubernetes', reason: failure.reason, message: failure.message, ...(logs ? { logs } : {}) });
  const detail = logs && problem ? `last log lines of ${problem.pod}:\n${logs.join('\n')}` : undefined;
  return new KubeError(failure.reason, failure.message, { hint, ...(detail ? { detail } : {}) });
}

async function podProblem(ctx: DeployContext, deployment: Deployment, namespace: string): Promise<PodProblem | undefined> {
  const labels = deployment.spec.selector?.matchLabels ?? {};
  const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
  try {
    const list = await ctx.client.json<{ items: Pod[] }>({
      method: 'GET',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      query: { labelSelector: selector || undefined },
      signal: ctx.request.signal,
    });
    return diagnosePods(list.items ?? [], ctx.request.reference);
  } catch (err) {
    if (isAbortError(err)) throw err;
    // Listing pods is a courtesy: without the permission, the rollout status alone decides.
    return undefined;
  }
}

/** The crashed container's last lines (its previous run's, else the current one's). */
async function lastLogLines(ctx: DeployContext, namespace: string, pod: string, container: string): Promise<string[] | undefined> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`;
  for (const previous of ['true', undefined]) {
    try {
      const text = await ctx.client.text({
        method: 'GET',
        path,
        query: { container, tailLines: String(LOG_LINES), previous },
        // The API server serves pods/log only to `*/*` (kubectl sends `application/json, */*`):
        // `text/plain` is answered 406 Not Acceptable.
        accept: '*/*',
        signal: ctx.request.signal,
      });
      const lines = text.replace(/\s+$/, '');
      if (lines) return lines.split('\n');
    } catch (err) {
      if (isAbortError(err)) throw err;
    }
  }
  return undefined;
}

/** The ReplicaSet of the Deployment's current revision, as `kubectl rollout history` counts them. */
async function newReplicaSet(ctx: DeployContext, deployment: Deployment, namespace: string): Promise<string | undefined> {
  const revision = deployment.metadata.annotations?.['deployment.kubernetes.io/revision'];
  const labels = deployment.spec.selector?.matchLabels ?? {};
  const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
  const list = await ctx.client.json<{ items?: Array<{ metadata: { name: string; annotations?: Record<string, string>; ownerReferences?: Array<{ uid?: string; name?: string; kind?: string }> } }> }>({
    method: 'GET',
    path: `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/replicasets`,
    query: { labelSelector: selector || undefined },
    signal: ctx.request.signal,
  });
  const owned = (list.items ?? []).filter((rs) =>
    (rs.metadata.ownerReferences ?? []).some((o) => o.kind === 'Deployment' && (o.uid ? o.uid === deployment.metadata.uid : o.name === deployment.metadata.name)),
  );
  return owned.find((rs) => revision !== undefined && rs.metadata.annotations?.['deployment.kubernetes.io/revision'] === revision)?.metadata.name;
}

/** Manifests mode: resolve ko:// references, server-side apply, wait for the Deployments that run the new image. */
async function applyManifests(ctx: DeployContext): Promise<Rollout> {
  const { connection, options, request, references } = ctx;
  const importPath = request.importPath;
  if (!importPath) throw new TskoError('INTERNAL', 'manifests mode needs the import path of the deployed image');
  references.set(importPath, request.reference);
  const files = options.manifests ?? [];
  const { objects, skipped } = await resolveManifests(files, references);
  if (!objects.some((object) => object.importPaths.includes(importPath)) && !skipped.some((s) => s.missing.includes(importPath))) {
    throw new TskoError('KUBE', `no manifest in ${files.join(', ')} references ko://${importPath}`, {
      hint: `use image: ko://${importPath} in the manifest that runs it`,
    });
  }
  for (const { object, missing } of skipped) {
    request.events.emit({ type: 'log', level: 'info', message: `not applying ${object} yet: no image pushed for ${missing.map((m) => `ko://${m}`).join(', ')}` });
  }
  const rollouts: Deployment[] = [];
  for (const object of objects) {
    const applied = await serverSideApply(ctx, object);
    request.events.emit({ type: 'rollout', target: 'kubernetes', message: `${object.kind.toLowerCase()}/${object.name} applied (server-side)` });
    if (object.kind === 'Deployment' && object.apiVersion === 'apps/v1' && object.importPaths.includes(importPath)) rollouts.push(applied as Deployment);
  }
  return {
    async ready() {
      let result: DeployResult | undefined;
      for (const deployment of rollouts) {
        deployment.metadata.namespace ??= connection.namespace;
        result = await waitForRollout(ctx, deployment);
      }
      return result ?? { revision: `applied ${objects.length} object${objects.length === 1 ? '' : 's'}` };
    },
  };
}

async function serverSideApply(ctx: DeployContext, object: ManifestObject): Promise<unknown> {
  const { plural, namespaced } = await resourceOf(ctx.client, ctx.resources, object.apiVersion, object.kind, ctx.request.signal);
  const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const namespace = object.namespace ?? ctx.connection.namespace;
  const path = `${base}${namespaced ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${plural}/${encodeURIComponent(object.name)}`;
  try {
    return await ctx.client.json({
      method: 'PATCH',
      path,
      // force: tsko owns the fields it applies, as `kubectl apply --server-side --force-conflicts`.
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
      // JSON is YAML: kubectl apply --server-side sends the object as JSON under this type too.
      contentType: 'application/apply-patch+yaml',
      body: JSON.stringify(object.body),
      signal: ctx.request.signal,
    });
  } catch (err) {
    if (err instanceof KubeApiError) {
      throw new TskoError('KUBE', `applying ${object.kind}/${object.name} from ${object.file}: ${err.message}`, err.hint ? { hint: err.hint } : {});
    }
    throw err;
  }
}
