// Reading the objects a Kubernetes deploy works on, shared by the deploy and its preflight: the
// Deployment (a 404 worded with the namespace and context, and the kubectl line that fixes it),
// the container to set, a kind's resource name from discovery, and whether this user may do a
// verb (a SelfSubjectAccessReview, what `kubectl auth can-i` asks).
import { KubeApiError, KubeError, type KubeClient } from './kube-client.js';
import type { KubeConnection } from './kube-config.js';
import type { Deployment } from './kube-rollout.js';

export interface ResourceInfo {
  plural: string;
  namespaced: boolean;
}

export function deploymentPath(namespace: string, name: string): string {
  return `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments/${encodeURIComponent(name)}`;
}

/** `--context CTX -n NS`, for the kubectl lines in hints. */
export function kubectlWhere(connection: KubeConnection, namespace: string): string {
  return `--context ${connection.context} -n ${namespace}`;
}

/** GET the Deployment; a 404 says where tsko looked and how to create it (or that the namespace is missing). */
export async function getDeployment(client: KubeClient, connection: KubeConnection, name: string, signal: AbortSignal, image = 'IMAGE'): Promise<Deployment> {
  const namespace = connection.namespace;
  try {
    return await client.json<Deployment>({ method: 'GET', path: deploymentPath(namespace, name), signal });
  } catch (err) {
    if (!(err instanceof KubeApiError) || err.status !== 404) throw err;
    if ((await namespaceExists(client, namespace, signal)) === false) throw namespaceMissing(connection, namespace);
    throw new KubeApiError(404, 'NotFound', `deployment "${name}" not found in namespace "${namespace}" (context "${connection.context}", ${connection.server})`, `create it once (kubectl ${kubectlWhere(connection, namespace)} create deployment ${name} --image=${image}), or name another with --deployment / --namespace`);
  }
}

/** Whether the object at `path` exists: true / false, or undefined when this user may not read it. */
export async function objectExists(client: KubeClient, path: string, signal: AbortSignal): Promise<boolean | undefined> {
  try {
    await client.json({ method: 'GET', path, signal });
    return true;
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return false;
    if (err instanceof KubeApiError && err.status === 403) return undefined;
    throw err;
  }
}

/** true / false, or undefined when this user may not read namespaces. */
export function namespaceExists(client: KubeClient, namespace: string, signal: AbortSignal): Promise<boolean | undefined> {
  return objectExists(client, `/api/v1/namespaces/${encodeURIComponent(namespace)}`, signal);
}

export function namespaceMissing(connection: KubeConnection, namespace: string): KubeApiError {
  return new KubeApiError(404, 'NotFound', `namespace "${namespace}" does not exist (context "${connection.context}", ${connection.server})`, `create it (kubectl --context ${connection.context} create namespace ${namespace}), or pass another --namespace`);
}

/** The container that runs the image: --container, else the only one, else the one named like the service. */
export function pickContainer(names: string[], wanted: string | undefined, service: string, what: string): string {
  if (wanted !== undefined) {
    if (names.includes(wanted)) return wanted;
    throw new KubeError('ContainerNotFound', `${what} has no container "${wanted}" (it has: ${names.join(', ') || 'none'})`, { hint: 'check --container' });
  }
  if (names.length === 1) return names[0] as string;
  if (names.includes(service)) return service;
  throw new KubeError('ContainerAmbiguous', `${what} has ${names.length} containers (${names.join(', ')}); pass --container to say which runs the image`);
}

/** kind → resource name via the API's discovery document, as kubectl's RESTMapper does; cached per target. */
export async function resourceOf(client: KubeClient, cache: Map<string, ResourceInfo>, apiVersion: string, kind: string, signal: AbortSignal): Promise<ResourceInfo> {
  const key = `${apiVersion}/${kind}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let list: { resources?: Array<{ name: string; kind: string; namespaced?: boolean }> };
  try {
    list = await client.json({ method: 'GET', path, signal });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) throw new KubeError('NotFound', `the cluster does not serve ${apiVersion} (for kind ${kind})`);
    throw err;
  }
  const found = (list.resources ?? []).find((r) => r.kind === kind && !r.name.includes('/'));
  if (!found) throw new KubeError('NotFound', `the cluster's ${apiVersion} has no kind ${kind}`);
  const value = { plural: found.name, namespaced: found.namespaced ?? true };
  cache.set(key, value);
  return value;
}

export interface AccessCheck {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/** Whether the API server's authorizer lets this user do it (`kubectl auth can-i`). */
export async function canI(client: KubeClient, check: AccessCheck, signal: AbortSignal): Promise<{ allowed: boolean; reason?: string }> {
  const review = await client.json<{ status?: { allowed?: boolean; reason?: string } }>({
    method: 'POST',
    path: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    contentType: 'application/json',
    body: JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: check } }),
    signal,
  });
  return { allowed: review.status?.allowed === true, ...(review.status?.reason ? { reason: review.status.reason } : {}) };
}

/** `kubectl auth can-i VERB RESOURCE[/NAME] -n NS --context CTX`, for hints. */
export function canICommand(connection: KubeConnection, check: AccessCheck): string {
  const what = `${check.resource}${check.group ? `.${check.group}` : ''}${check.name ? `/${check.name}` : ''}`;
  return `kubectl auth can-i ${check.verb} ${what}${check.namespace ? ` -n ${check.namespace}` : ''} --context ${connection.context}`;
}
