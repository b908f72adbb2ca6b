// The Kubernetes target: each deploy sets the new image (by digest) on one container of a
// Deployment with a strategic merge patch — or, in manifests mode, server-side applies the
// config's YAML with its ko:// references resolved — then waits until the rollout is done as
// `kubectl rollout status` decides, failing early (with the pods' reason and a crash's last log
// lines) when a new pod is in a state that will not cure itself. The Deployment's old pods keep
// serving a failed rollout, as a RollingUpdate does.
import { sleep } from '../abort.js';
import { TskoError, isAbortError } from '../errors.js';
import type { EventBus } from '../events.js';
import { KubeApiError, KubeClient } from './kube-client.js';
import type { KubeConfigOptions, KubeConnection } from './kube-config.js';
import { resolveManifests, type ManifestObject } from './kube-manifests.js';
import { diagnosePods, rolloutStatus, type Deployment, type Pod, type PodProblem } from './kube-rollout.js';
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
  const resources = new Map<string, { plural: string; namespaced: boolean }>();
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
    close: () => client.close(),
  };
}

interface DeployContext {
  client: KubeClient;
  connection: KubeConnection;
  options: KubernetesTargetOptions;
  request: DeployRequest;
  references: Map<string, string>;
  resources: Map<string, { plural: string; namespaced: boolean }>;
}

function deploymentPath(namespace: string, name: string): string {
  return `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments/${encodeURIComponent(name)}`;
}

async function patchDeployment(ctx: DeployContext): Promise<Rollout> {
  const { client, connection, options, request } = ctx;
  const name = options.deployment ?? request.service;
  const namespace = connection.namespace;
  const path = deploymentPath(namespace, name);
  let current: Deployment;
  try {
    current = await client.json<Deployment>({ method: 'GET', path, signal: request.signal });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) {
      throw new TskoError('KUBE', `deployment "${name}" not found in namespace "${namespace}" (context "${connection.context}", ${connection.server})`, {
        hint: `create it once (kubectl create deployment ${name} --image=${request.reference}), or name another with --deployment / --namespace`,
      });
    }
    throw err;
  }
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

function pickContainer(names: string[], wanted: string | undefined, service: string, what: string): string {
  if (wanted !== undefined) {
    if (names.includes(wanted)) return wanted;
    throw new TskoError('KUBE', `${what} has no container "${wanted}" (it has: ${names.join(', ') || 'none'})`, { hint: 'check --container' });
  }
  if (names.length === 1) return names[0] as string;
  if (names.includes(service)) return service;
  throw new TskoError('KUBE', `${what} has ${names.length} containers (${names.join(', ')}); pass --container to say which runs the image`);
}

/** Polls the Deployment until kubectl would call it rolled out, the deadline passes, or a pod says why not. */
async function waitForRollout(ctx: DeployContext, patched: Deployment): Promise<DeployResult> {
  const { client, connection, options, request } = ctx;
  const { events, signal } = request;
  const name = patched.metadata.name;
  const namespace = patched.metadata.namespace ?? connection.namespace;
  const path = deploymentPath(namespace, name);
  const minGeneration = patched.metadata.generation ?? 0;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = performance.now();
  let lastMessage = '';
  let lastDiagnosis = started;
  let deployment = patched;
  let delay = 100;
  for (;;) {
    const status = rolloutStatus(deployment, minGeneration);
    if (status.message !== lastMessage) {
      lastMessage = status.message;
      events.emit({ type: 'rollout', target: 'kubernetes', message: status.message });
    }
    if (status.state === 'done') break;
    if (status.state === 'failed') {
      const problem = await podProblem(ctx, deployment, namespace);
      throw await rolloutError(ctx, `${status.message}${problem ? `: ${describeProblem(problem)}` : ''}`, problem, namespace);
    }
    const elapsed = performance.now() - started;
    if (elapsed >= timeoutMs) {
      const problem = await podProblem(ctx, deployment, namespace);
      throw await rolloutError(
        ctx,
        `rollout of deployment "${name}" timed out after ${Math.round(timeoutMs / 1000)} s: ${problem ? describeProblem(problem) : lastMessage.replace(/^Waiting for deployment "[^"]+" rollout to finish: /, '').replace(/\.\.\.$/, '')}`,
        problem,
        namespace,
      );
    }
    if (performance.now() - lastDiagnosis >= DIAGNOSE_AFTER_MS) {
      lastDiagnosis = performance.now();
      const problem = await podProblem(ctx, deployment, namespace);
      if (problem?.fatal) throw await rolloutError(ctx, `rollout of deployment "${name}" failed: ${describeProblem(problem)}`, problem, namespace);
    }
    await sleep(Math.min(delay, Math.max(0, timeoutMs - elapsed)), signal);
    delay = Math.min(delay * 1.5, 1000);
    deployment = await client.json<Deployment>({ method: 'GET', path, signal });
  }
  const revision = await newReplicaSet(ctx, deployment, namespace).catch((err: unknown) => {
    if (isAbortError(err)) throw err;
    return undefined;
  });
  events.emit({ type: 'rollout', target: 'kubernetes', message: `deployment "${name}" rolled out in ${Math.round(performance.now() - started)} ms${revision ? ` (replicaset ${revision})` : ''}` });
  return { revision: revision ?? `${name}@${deployment.metadata.generation ?? minGeneration}` };
}

function describeProblem(problem: PodProblem): string {
  return `pod ${problem.pod}${problem.container ? ` (container ${problem.container})` : ''}: ${problem.reason}${problem.message && problem.message !== problem.reason ? `: ${problem.message}` : ''}`;
}

async function rolloutError(ctx: DeployContext, message: string, problem: PodProblem | undefined, namespace: string): Promise<TskoError> {
  let detail: string | undefined;
  if (problem?.wantsLogs && problem.container) {
    detail = await lastLogLines(ctx, namespace, problem.pod, problem.container);
  }
  const pull = problem && /ImagePull|ErrImage|InvalidImageName/.test(problem.reason);
  const hint = pull
    ? `the cluster cannot pull ${ctx.request.reference}: can its nodes reach that registry, with pull access?`
    : "the Deployment's previous pods keep serving; the next save rolls out again";
  return new TskoError('KUBE', message, { hint, ...(detail ? { detail } : {}) });
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

async function lastLogLines(ctx: DeployContext, namespace: string, pod: string, container: string): Promise<string | undefined> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`;
  for (const previous of ['true', undefined]) {
    try {
      const text = await ctx.client.text({
        method: 'GET',
        path,
        query: { container, tailLines: String(LOG_LINES), previous },
        accept: 'text/plain',
        signal: ctx.request.signal,
      });
      const lines = text.replace(/\s+$/, '');
      if (lines) return `last log lines of ${pod}:\n${lines}`;
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
  const { plural, namespaced } = await resource(ctx, object.apiVersion, object.kind);
  const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const namespace = object.namespace ?? ctx.connection.namespace;
  const path = `${base}${namespaced ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${plural}/${encodeURIComponent(object.name)}`;
  try {
    return await ctx.client.json({
      method: 'PATCH',
      path,
      // force: tsko owns the fields it applies, as `kubectl apply --server-side --force-conflicts`.
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
      contentType: 'application/apply-patch+yaml',
      body: object.yaml,
      signal: ctx.request.signal,
    });
  } catch (err) {
    if (err instanceof KubeApiError) {
      throw new TskoError('KUBE', `applying ${object.kind}/${object.name} from ${object.file}: ${err.message}`, err.hint ? { hint: err.hint } : {});
    }
    throw err;
  }
}

/** kind → resource name via the API's discovery document, as kubectl's RESTMapper does. */
async function resource(ctx: DeployContext, apiVersion: string, kind: string): Promise<{ plural: string; namespaced: boolean }> {
  const key = `${apiVersion}/${kind}`;
  const cached = ctx.resources.get(key);
  if (cached) return cached;
  const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let list: { resources?: Array<{ name: string; kind: string; namespaced?: boolean }> };
  try {
    list = await ctx.client.json({ method: 'GET', path, signal: ctx.request.signal });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) throw new TskoError('KUBE', `the cluster does not serve ${apiVersion} (for kind ${kind})`);
    throw err;
  }
  const found = (list.resources ?? []).find((r) => r.kind === kind && !r.name.includes('/'));
  if (!found) throw new TskoError('KUBE', `the cluster's ${apiVersion} has no kind ${kind}`);
  const value = { plural: found.name, namespaced: found.namespaced ?? true };
  ctx.resources.set(key, value);
  return value;
}
