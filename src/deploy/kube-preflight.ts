// The Kubernetes target's check before the first build, so a deploy that cannot succeed fails in
// one line with its fix instead of after a build and a push: the kubeconfig's context loads, its
// API server answers and takes the credentials (a 401 here), the Deployment and its container are
// there (a 404 names the namespace and context), and RBAC lets this user patch it (a
// SelfSubjectAccessReview). In manifests mode: every object's namespace exists (or is one of the
// manifests' own Namespaces), and this user may apply each object.
import type { KubeClient } from './kube-client.js';
import { KubeApiError, KubeError } from './kube-client.js';
import type { KubeConnection } from './kube-config.js';
import { resolveManifests } from './kube-manifests.js';
import { canI, canICommand, getDeployment, namespaceExists, namespaceMissing, objectExists, pickContainer, resourceOf, type AccessCheck, type ResourceInfo } from './kube-objects.js';

export interface PreflightContext {
  client: KubeClient;
  connection: KubeConnection;
  service: string;
  importPath: string;
  deployment: string | undefined;
  container: string | undefined;
  manifests: string[];
  resources: Map<string, ResourceInfo>;
  signal: AbortSignal;
}

/** Checks the Deployment mode's deploy; resolves with what was checked, for the preflight event. */
export async function preflightDeployment(ctx: PreflightContext): Promise<string> {
  const { client, connection, signal } = ctx;
  const name = ctx.deployment ?? ctx.service;
  const namespace = connection.namespace;
  const deployment = await getDeployment(client, connection, name, signal);
  const container = pickContainer(
    deployment.spec.template.spec.containers.map((c) => c.name),
    ctx.container,
    ctx.service,
    `deployment "${name}" in namespace "${namespace}"`,
  );
  await mayDo(ctx, { verb: 'patch', group: 'apps', resource: 'deployments', namespace, name }, `patch deployment "${name}" in namespace "${namespace}"`);
  return `deployment/${name} in namespace "${namespace}" (context "${connection.context}", ${connection.server}): container ${container}, patch allowed`;
}

/** Checks the manifests mode's deploy: the files parse, name the image, and every object may be applied. */
export async function preflightManifests(ctx: PreflightContext): Promise<string> {
  const { client, connection, signal } = ctx;
  // No image is pushed yet: every object that names one comes back as skipped, with its identity.
  const { objects, skipped } = await resolveManifests(ctx.manifests, new Map());
  const all = [...objects, ...skipped];
  if (!all.some((object) => object.importPaths.includes(ctx.importPath))) {
    throw new KubeError('ImageNotReferenced', `no manifest in ${ctx.manifests.join(', ')} references ko://${ctx.importPath}`, { hint: `use image: ko://${ctx.importPath} in the manifest that runs it` });
  }
  const ownNamespaces = new Set(all.filter((o) => o.apiVersion === 'v1' && o.kind === 'Namespace').map((o) => o.name));
  const checkedNamespaces = new Map<string, boolean | undefined>();
  for (const object of all) {
    const { plural, namespaced } = await resourceOf(client, ctx.resources, object.apiVersion, object.kind, signal);
    const namespace = namespaced ? (object.namespace ?? connection.namespace) : undefined;
    if (namespace !== undefined && !ownNamespaces.has(namespace)) {
      if (!checkedNamespaces.has(namespace)) checkedNamespaces.set(namespace, await namespaceExists(client, namespace, signal));
      if (checkedNamespaces.get(namespace) === false) throw namespaceMissing(connection, namespace);
    }
    const group = object.apiVersion.includes('/') ? (object.apiVersion.split('/')[0] as string) : '';
    const what = `${object.kind}/${object.name}${namespace ? ` in namespace "${namespace}"` : ''}`;
    const check: AccessCheck = { verb: 'patch', group, resource: plural, name: object.name, ...(namespace ? { namespace } : {}) };
    await mayDo(ctx, check, `apply ${what}`);
    // Server-side apply that creates the object is authorized as a create as well.
    const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
    const path = `${base}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${plural}/${encodeURIComponent(object.name)}`;
    // undefined (this user may not read it): the patch review above is all that is checked.
    if ((await objectExists(client, path, signal)) === false) await mayDo(ctx, { ...check, verb: 'create' }, `create ${what} (server-side apply of a new object)`);
  }
  return `${all.length} object${all.length === 1 ? '' : 's'} in ${ctx.manifests.length} file${ctx.manifests.length === 1 ? '' : 's'} (context "${connection.context}", ${connection.server}): apply allowed`;
}

async function mayDo(ctx: PreflightContext, check: AccessCheck, what: string): Promise<void> {
  let answer: { allowed: boolean; reason?: string };
  try {
    answer = await canI(ctx.client, check, ctx.signal);
  } catch (err) {
    // A cluster without the authorization API (or a user who may not ask) leaves it to the deploy.
    if (err instanceof KubeApiError && (err.status === 404 || err.status === 403)) return;
    throw err;
  }
  if (answer.allowed) return;
  const { connection } = ctx;
  throw new KubeApiError(
    403,
    'Forbidden',
    `kubeconfig user "${connection.user}" (context "${connection.context}") may not ${what}${answer.reason ? `: ${answer.reason}` : ''}`,
    `ask for the permission (a Role allowing ${check.verb} on ${check.resource}${check.group ? `.${check.group}` : ''}); check it with ${canICommand(connection, check)}`,
  );
}
