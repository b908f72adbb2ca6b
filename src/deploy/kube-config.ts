// Which cluster, user and namespace a Kubernetes deploy talks to: kubeconfig files (KUBECONFIG's
// list, or ~/.kube/config) merged the way kubectl merges them, a context picked by flag or
// current-context. Auth itself (tokens, client certs, exec plugins such as gke-gcloud-auth-plugin)
// is mostly left to @kubernetes/client-node's KubeConfig; the user fields kubectl honours and
// client-node 2.0 does not (`tokenFile`, which it looks for as `token-file`; `as-uid`, `as-groups`,
// `as-user-extra`; KUBERNETES_EXEC_INFO for exec plugins) are read here, from the file itself.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { Cluster, Context, KubeConfig, User } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { TskoError } from '../errors.js';

export interface KubeConfigOptions {
  /** kubeconfig files in precedence order (KUBECONFIG's entries, else ~/.kube/config). */
  paths: string[];
  /** Where the paths came from, for messages: `KUBECONFIG` or `~/.kube/config`. */
  source: string;
  /** --context; default current-context. */
  context?: string;
  /** --namespace; default the context's, else `default`. */
  namespace?: string;
}

export interface KubeConnection {
  kc: KubeConfig;
  context: string;
  cluster: Cluster;
  /** The kubeconfig user's name (never its secrets), for messages. */
  user: string;
  namespace: string;
  /** The API server's base URL, no trailing slash. */
  server: string;
  /** The files that were read, for messages. */
  files: string[];
  /** The user's fields client-node does not apply (see KubeUserExtras). */
  extras: KubeUserExtras;
}

/** kubectl's AuthInfo fields that client-node 2.0 leaves out; applied by KubeClient on every request. */
export interface KubeUserExtras {
  /** `tokenFile`, absolute (relative paths are relative to the kubeconfig's directory, as kubectl has it). */
  tokenFile?: string;
  /** `token`, the fallback when the token file cannot be read (client-go's order). */
  token?: string;
  /** `as-uid`, `as-groups`, `as-user-extra`: impersonation beyond `as`, which client-node sends. */
  impersonateUid?: string;
  impersonateGroups?: string[];
  impersonateExtra?: Record<string, string[]>;
}

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: Promise<ClientNode> | undefined;

/** The library is large: load it only when a Kubernetes target is used. */
export function loadClientNode(): Promise<ClientNode> {
  clientNode ??= import('@kubernetes/client-node');
  return clientNode;
}

export async function loadKubeConnection(options: KubeConfigOptions): Promise<KubeConnection> {
  const { KubeConfig } = await loadClientNode();
  const files = options.paths.filter((path) => existsSync(path));
  if (files.length === 0) {
    const where = options.paths.length === 0 ? options.source : options.paths.join(', ');
    throw new TskoError('KUBE', `no kubeconfig: ${where} does not exist`, {
      hint: 'point KUBECONFIG at a kubeconfig file (e.g. from `gcloud container clusters get-credentials`, `kind`, or `minikube`)',
    });
  }
  const kc = new KubeConfig();
  /** user name → its extra fields, from the first file that defines the user (kubectl's merge rule). */
  const extras = new Map<string, KubeUserExtras>();
  for (const [index, file] of files.entries()) {
    const one = new KubeConfig();
    try {
      one.loadFromFile(file);
      for (const [name, extra] of userExtras(file)) if (!extras.has(name)) extras.set(name, extra);
    } catch (err) {
      throw new TskoError('KUBE', `cannot read kubeconfig ${file}: ${firstLine(err)}`, { cause: err });
    }
    if (index === 0) {
      kc.loadFromOptions({ clusters: one.clusters, users: one.users, contexts: one.contexts, currentContext: one.currentContext });
      continue;
    }
    // kubectl's rule: the first file to define a name (or current-context) wins; later ones only add.
    if (!kc.currentContext && one.currentContext) kc.setCurrentContext(one.currentContext);
    for (const cluster of one.clusters) if (!kc.getCluster(cluster.name)) kc.addCluster(cluster);
    for (const user of one.users) if (!kc.getUser(user.name)) kc.addUser(user);
    for (const context of one.contexts) if (!kc.getContextObject(context.name)) kc.addContext(context);
  }

  const known = kc.getContexts().map((c) => c.name);
  const knownText = known.length > 0 ? `known: ${known.join(', ')}` : 'it has none';
  const name = options.context ?? kc.getCurrentContext();
  if (!name) {
    throw new TskoError('KUBE', `${files.join(', ')} sets no current-context`, { hint: `pass --context (${knownText})` });
  }
  const context: Context | null = kc.getContextObject(name);
  if (!context) {
    throw new TskoError('KUBE', `context "${name}" is not in ${files.join(', ')} (${knownText})`, {
      hint: options.context ? 'check --context (or dev.kubernetes.context)' : 'fix current-context, or pass --context',
    });
  }
  kc.setCurrentContext(name);
  const cluster = kc.getCluster(context.cluster);
  if (!cluster || !cluster.server) {
    throw new TskoError('KUBE', `context "${name}" names cluster "${context.cluster}", which ${files.join(', ')} does not define (or has no server)`);
  }
  const user: User | null = context.user ? kc.getUser(context.user) : null;
  if (context.user && !user) {
    throw new TskoError('KUBE', `context "${name}" names user "${context.user}", which ${files.join(', ')} does not define`);
  }
  const extraFields = (context.user && extras.get(context.user)) || {};
  if (user?.exec) provideExecInfo(user, cluster);
  return {
    kc,
    extras: extraFields,
    context: name,
    cluster,
    user: context.user || '(none)',
    namespace: options.namespace || context.namespace || 'default',
    server: cluster.server.replace(/\/+$/, ''),
    files,
  };
}

/** The AuthInfo fields client-node does not read, per user, from one kubeconfig file. */
function userExtras(file: string): Map<string, KubeUserExtras> {
  const out = new Map<string, KubeUserExtras>();
  const raw = parseYaml(readFileSync(file, 'utf8')) as { users?: Array<{ name?: unknown; user?: Record<string, unknown> }> } | null;
  for (const entry of raw?.users ?? []) {
    const user = entry?.user;
    if (typeof entry?.name !== 'string' || !user) continue;
    const extra: KubeUserExtras = {};
    const tokenFile = user.tokenFile;
    if (typeof tokenFile === 'string' && tokenFile !== '') extra.tokenFile = isAbsolute(tokenFile) ? tokenFile : join(dirname(file), tokenFile);
    if (typeof user.token === 'string' && user.token !== '') extra.token = user.token;
    if (typeof user['as-uid'] === 'string' && user['as-uid'] !== '') extra.impersonateUid = user['as-uid'];
    const groups = user['as-groups'];
    if (Array.isArray(groups)) extra.impersonateGroups = groups.filter((g): g is string => typeof g === 'string');
    const userExtra = user['as-user-extra'];
    if (userExtra && typeof userExtra === 'object') {
      extra.impersonateExtra = Object.fromEntries(
        Object.entries(userExtra as Record<string, unknown>).map(([key, values]) => [key, Array.isArray(values) ? values.map(String) : [String(values)]]),
      );
    }
    out.set(entry.name, extra);
  }
  return out;
}

/**
 * client-go hands every exec plugin KUBERNETES_EXEC_INFO (an ExecCredential naming the API version,
 * whether it may prompt, and with provideClusterInfo the cluster); client-node 2.0 sets none. Given
 * through the exec entry's env, which client-node does pass on.
 */
function provideExecInfo(user: User, cluster: Cluster): void {
  const exec = user.exec as { apiVersion?: string; provideClusterInfo?: boolean; env?: Array<{ name: string; value: string }> | null };
  const env = (exec.env ?? []).filter((e) => e.name !== 'KUBERNETES_EXEC_INFO');
  const spec: Record<string, unknown> = { interactive: false };
  if (exec.provideClusterInfo) {
    spec.cluster = {
      server: cluster.server,
      ...(cluster.tlsServerName ? { 'tls-server-name': cluster.tlsServerName } : {}),
      ...(cluster.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
      ...(cluster.caData ? { 'certificate-authority-data': cluster.caData } : {}),
      ...(cluster.proxyUrl ? { 'proxy-url': cluster.proxyUrl } : {}),
    };
  }
  const info = { apiVersion: exec.apiVersion ?? 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', spec };
  exec.env = [...env, { name: 'KUBERNETES_EXEC_INFO', value: JSON.stringify(info) }];
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
