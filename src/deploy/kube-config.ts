// Which cluster, user and namespace a Kubernetes deploy talks to: kubeconfig files (KUBECONFIG's
// list, or ~/.kube/config) merged the way kubectl merges them, a context picked by flag or
// current-context. Auth itself (tokens, client certs, exec plugins such as gke-gcloud-auth-plugin)
// is left to @kubernetes/client-node's KubeConfig, which already implements every kind.
import { existsSync } from 'node:fs';
import type { Cluster, Context, KubeConfig, User } from '@kubernetes/client-node';
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
  for (const [index, file] of files.entries()) {
    const one = new KubeConfig();
    try {
      one.loadFromFile(file);
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
  return {
    kc,
    context: name,
    cluster,
    user: context.user || '(none)',
    namespace: options.namespace || context.namespace || 'default',
    server: cluster.server.replace(/\/+$/, ''),
    files,
  };
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
