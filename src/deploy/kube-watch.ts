// Every new state of one Deployment, as `kubectl rollout status` follows it: a WATCH on the
// Deployment by name from a known resourceVersion (the PATCH answer's), so each controller update
// arrives the moment the API server has it. A watch the server ends (its timeoutSeconds) is opened
// again from the last version seen; a version too old to watch from (410 Gone / Expired) is
// replaced by a fresh GET. A user who may GET but not WATCH deployments is polled instead.
import { sleep } from '../abort.js';
import { KubeApiError, type KubeClient } from './kube-client.js';
import type { Deployment } from './kube-rollout.js';

export interface DeploymentUpdatesOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Watch from here (the PATCH answer's metadata.resourceVersion); without it, GET first. */
  resourceVersion?: string;
  signal: AbortSignal;
  /** How long one watch request may stay open on the server (default 300 s). */
  watchSeconds?: number;
}

interface WatchStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

const POLL_MIN_MS = 100;
const POLL_MAX_MS = 1000;

/** Yields the Deployment each time it changes; runs until the consumer stops or the signal aborts. */
export async function* deploymentUpdates(options: DeploymentUpdatesOptions): AsyncGenerator<Deployment> {
  const { client, namespace, name, signal } = options;
  const collection = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`;
  const get = () => client.json<Deployment>({ method: 'GET', path: `${collection}/${encodeURIComponent(name)}`, signal });
  let resourceVersion = options.resourceVersion;
  for (;;) {
    if (resourceVersion === undefined) {
      const current = await get();
      resourceVersion = current.metadata.resourceVersion;
      yield current;
    }
    let expired = false;
    const opened = performance.now();
    let events = 0;
    try {
      for await (const event of client.watch<Deployment | WatchStatus>({
        method: 'GET',
        path: collection,
        query: {
          fieldSelector: `metadata.name=${name}`,
          resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(options.watchSeconds ?? 300),
          watch: 'true',
        },
        signal,
      })) {
        if (event.type === 'ERROR') {
          const status = event.object as WatchStatus;
          // The version fell out of the server's watch cache: start again from a fresh read.
          if (status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone') {
            expired = true;
            break;
          }
          throw new KubeApiError(status.code ?? 500, status.reason, `watching deployment "${name}" in namespace "${namespace}": ${status.message ?? status.reason ?? 'watch error'}`);
        }
        events++;
        const object = event.object as Deployment;
        if (object.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
        if (event.type === 'ADDED' || event.type === 'MODIFIED') yield object;
        if (event.type === 'DELETED') throw new KubeApiError(404, 'NotFound', `deployment "${name}" in namespace "${namespace}" was deleted during the rollout`);
      }
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 410) {
        expired = true;
      } else if (err instanceof KubeApiError && err.status === 403) {
        yield* polled(get, signal);
        return;
      } else {
        throw err;
      }
    }
    if (expired) resourceVersion = undefined;
    // A stream something between us and the server keeps cutting at once is not retried in a spin.
    else if (events === 0 && performance.now() - opened < 1000) await sleep(1000, signal);
  }
}

/** Without the watch permission: GET with a growing pause, as the target did before it watched. */
async function* polled(get: () => Promise<Deployment>, signal: AbortSignal): AsyncGenerator<Deployment> {
  let delay = POLL_MIN_MS;
  for (;;) {
    await sleep(delay, signal);
    delay = Math.min(delay * 1.5, POLL_MAX_MS);
    yield await get();
  }
}
