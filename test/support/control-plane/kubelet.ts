// A stand-in kubelet (and scheduler) for the test control plane, in-process: it registers one Ready
// Node, binds every unscheduled pod to it, and moves each pod's containers to the fate the test
// chose for their image (Running + Ready, an image pull failure, or a crash loop), writing pod
// status the way the real kubelet does so the real ReplicaSet and Deployment controllers roll out.
// It serves /containerLogs over HTTPS so pods/log through the real apiserver returns the crash
// logs, records the Events the kubelet would (Pulling, Started, Failed, BackOff), and finalizes pods
// marked for deletion so old ReplicaSets really scale down.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeClient, WatchEvent } from './kube-client.js';

export const NODE_NAME = 'tsko-node';

export type PodBehaviour =
  | { kind: 'ready' }
  | { kind: 'crash'; logs: string[]; exitCode?: number }
  | { kind: 'image-pull' };

export type BehaviourFn = (image: string) => PodBehaviour | Promise<PodBehaviour>;

interface Container {
  name: string;
  image: string;
  behaviour: PodBehaviour;
  containerId: string;
  restartCount: number;
  /** For image-pull: whether the last status written was ErrImagePull (else ImagePullBackOff). */
  pulling: boolean;
  backoffSeconds: number;
  startedAt: string;
  finishedAt?: string;
}

interface PodState {
  uid: string;
  namespace: string;
  name: string;
  containers: Container[];
  startedAt: string;
  podIp: string;
  timer?: NodeJS.Timeout;
  gone: boolean;
}

interface PodObject {
  metadata?: { name?: string; namespace?: string; uid?: string; deletionTimestamp?: string; resourceVersion?: string };
  spec?: { nodeName?: string; containers?: { name: string; image?: string }[] };
}

export interface StandInKubeletOptions {
  client: KubeClient;
  certFile: string;
  keyFile: string;
  kubeVersion: string;
  behaviour: () => BehaviourFn;
  /** Diagnostics (never secrets). */
  log?: (line: string) => void;
}

export interface StandInKubelet {
  port: number;
  stop(): Promise<void>;
}

const CRASH_BACKOFF_CAP_S = 5;
const PULL_BACKOFF_CAP_S = 10;

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function startStandInKubelet(options: StandInKubeletOptions): Promise<StandInKubelet> {
  const { client } = options;
  const log = options.log ?? (() => {});
  const pods = new Map<string, PodState>();
  const byName = new Map<string, PodState>();
  const binding = new Set<string>();
  const deleting = new Set<string>();
  const queues = new Map<string, Promise<void>>();
  const abort = new AbortController();
  let podIpCounter = 1;

  const server: Server = createServer({ cert: await readFile(options.certFile), key: await readFile(options.keyFile) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || m === null) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
      return;
    }
    const [, ns, podName, containerName] = m.map((s) => decodeURIComponent(s));
    const pod = byName.get(`${ns}/${podName}`);
    const container = pod?.containers.find((c) => c.name === containerName);
    if (pod === undefined || container === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`container ${containerName} is not found in pod ${ns}/${podName}\n`);
      return;
    }
    if (container.behaviour.kind === 'image-pull') {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`container "${containerName}" in pod "${podName}" is waiting to start: trying and failing to pull image`);
      return;
    }
    let lines = container.behaviour.kind === 'crash' ? [...container.behaviour.logs] : [];
    if (url.searchParams.get('timestamps') === 'true') lines = lines.map((l) => `${container.finishedAt ?? container.startedAt} ${l}`);
    const tail = url.searchParams.get('tailLines');
    if (tail !== null && Number(tail) >= 0) lines = Number(tail) === 0 ? [] : lines.slice(-Number(tail));
    let body = lines.map((l) => `${l}\n`).join('');
    const limit = url.searchParams.get('limitBytes');
    if (limit !== null && Number(limit) > 0) body = Buffer.from(body).subarray(0, Number(limit)).toString('utf8');
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  await registerNode(client, port, options.kubeVersion);

  const patchStatus = async (pod: PodState): Promise<void> => {
    if (pod.gone) return;
    const res = await client.request('PATCH', `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}/status`, { status: podStatus(pod) }, 'application/merge-patch+json');
    if (res.status === 404) pod.gone = true;
    else if (res.status >= 300) log(`kubelet: status of ${pod.namespace}/${pod.name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  };

  /** Posts the Events the real kubelet records for a container (kubectl describe, event watchers). */
  const record = async (pod: PodState, c: Container, events: [type: 'Normal' | 'Warning', reason: string, message: string][]): Promise<void> => {
    for (const [type, reason, message] of events) {
      if (pod.gone) return;
      const t = now();
      const res = await client.request('POST', `/api/v1/namespaces/${pod.namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${pod.name}.${randomBytes(8).toString('hex')}`, namespace: pod.namespace },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: pod.namespace, name: pod.name, uid: pod.uid, fieldPath: `spec.containers{${c.name}}` },
        type,
        reason,
        message,
        source: { component: 'kubelet', host: NODE_NAME },
        reportingComponent: 'kubelet',
        reportingInstance: NODE_NAME,
        firstTimestamp: t,
        lastTimestamp: t,
        count: 1,
      });
      if (res.status >= 300 && res.status !== 404) log(`kubelet: event ${reason} for ${pod.namespace}/${pod.name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    }
  };

  const pullFailed = (c: Container): [type: 'Warning', reason: string, message: string][] => [
    ['Warning', 'Failed', `Failed to pull image "${c.image}": ${pullError(c.image)}`],
    ['Warning', 'Failed', 'Error: ErrImagePull'],
  ];

  /** The events of a container's first start, by its fate. */
  const startEvents = (pod: PodState, c: Container): [type: 'Normal' | 'Warning', reason: string, message: string][] => {
    const pulling: [type: 'Normal', reason: string, message: string] = ['Normal', 'Pulling', `Pulling image "${c.image}"`];
    switch (c.behaviour.kind) {
      case 'image-pull':
        return [pulling, ...pullFailed(c)];
      case 'ready':
        return [pulling, ['Normal', 'Pulled', `Successfully pulled image "${c.image}"`], ['Normal', 'Created', `Created container: ${c.name}`], ['Normal', 'Started', `Started container ${c.name}`]];
      case 'crash':
        return [
          pulling, ['Normal', 'Pulled', `Successfully pulled image "${c.image}"`], ['Normal', 'Created', `Created container: ${c.name}`], ['Normal', 'Started', `Started container ${c.name}`],
          ['Warning', 'BackOff', crashBackOff(pod, c)],
        ];
    }
  };

  const schedule = (pod: PodState): void => {
    if (pod.gone || abort.signal.aborted) return;
    const delays = pod.containers.flatMap((c) => {
      if (c.behaviour.kind === 'crash') return [c.backoffSeconds];
      if (c.behaviour.kind === 'image-pull') return [c.pulling ? 1 : c.backoffSeconds];
      return [];
    });
    if (delays.length === 0) return;
    pod.timer = setTimeout(() => enqueue(pod.uid, () => advance(pod)), Math.min(...delays) * 1000);
    pod.timer.unref();
  };

  /** One step of each failing container: a crash restarts (count +1), a pull retries or backs off. */
  const advance = async (pod: PodState): Promise<void> => {
    if (pod.gone) return;
    const events: [Container, [type: 'Normal' | 'Warning', reason: string, message: string][]][] = [];
    for (const c of pod.containers) {
      if (c.behaviour.kind === 'crash') {
        c.restartCount++;
        c.startedAt = now();
        c.finishedAt = now();
        c.backoffSeconds = Math.min(c.backoffSeconds * 2, CRASH_BACKOFF_CAP_S);
        events.push([c, [['Warning', 'BackOff', crashBackOff(pod, c)]]]);
      } else if (c.behaviour.kind === 'image-pull') {
        if (c.pulling) {
          c.pulling = false;
          events.push([c, [['Normal', 'BackOff', `Back-off pulling image "${c.image}"`], ['Warning', 'Failed', 'Error: ImagePullBackOff']]]);
        } else {
          // A retry pulls again: the image may have been pushed meanwhile.
          await decide(c);
          c.pulling = true;
          c.backoffSeconds = Math.min(c.backoffSeconds * 2, PULL_BACKOFF_CAP_S);
          events.push([c, startEvents(pod, c)]);
        }
      }
    }
    await patchStatus(pod);
    for (const [c, list] of events) await record(pod, c, list);
    schedule(pod);
  };

  const decide = async (c: Container): Promise<void> => {
    try {
      c.behaviour = await options.behaviour()(c.image);
    } catch (err) {
      log(`kubelet: behaviour for ${c.image} failed: ${errText(err)}`);
      c.behaviour = { kind: 'image-pull' };
    }
    const t = now();
    c.startedAt = t;
    if (c.behaviour.kind === 'crash') {
      c.restartCount = Math.max(c.restartCount, 1);
      c.finishedAt = t;
    }
  };

  const startPod = async (obj: PodObject, uid: string): Promise<void> => {
    const ns = obj.metadata?.namespace ?? 'default';
    const name = obj.metadata?.name ?? '';
    const n = podIpCounter++;
    const pod: PodState = {
      uid,
      namespace: ns,
      name,
      startedAt: now(),
      podIp: `10.88.${(n >> 8) & 255}.${n & 255}`,
      gone: false,
      containers: (obj.spec?.containers ?? []).map((c) => ({
        name: c.name,
        image: c.image ?? '',
        behaviour: { kind: 'ready' },
        containerId: `containerd://${randomBytes(32).toString('hex')}`,
        restartCount: 0,
        pulling: true,
        backoffSeconds: 1,
        startedAt: now(),
      })),
    };
    pods.set(uid, pod);
    byName.set(`${ns}/${name}`, pod);
    for (const c of pod.containers) await decide(c);
    await patchStatus(pod);
    for (const c of pod.containers) await record(pod, c, startEvents(pod, c));
    schedule(pod);
  };

  const forget = (uid: string): void => {
    const pod = pods.get(uid);
    if (pod === undefined) return;
    pod.gone = true;
    clearTimeout(pod.timer);
    pods.delete(uid);
    if (byName.get(`${pod.namespace}/${pod.name}`) === pod) byName.delete(`${pod.namespace}/${pod.name}`);
  };

  const handle = async (type: WatchEvent['type'], obj: PodObject): Promise<void> => {
    const uid = obj.metadata?.uid;
    const ns = obj.metadata?.namespace;
    const name = obj.metadata?.name;
    if (uid === undefined || ns === undefined || name === undefined) return;
    if (type === 'DELETED') {
      forget(uid);
      return;
    }
    const path = `/api/v1/namespaces/${ns}/pods/${name}`;
    if (obj.metadata?.deletionTimestamp !== undefined) {
      // The real kubelet stops the containers, then deletes with grace 0; there is nothing to stop.
      if (deleting.has(uid)) return;
      deleting.add(uid);
      forget(uid);
      const res = await client.request('DELETE', path, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } });
      if (res.status >= 300 && res.status !== 404 && res.status !== 409) log(`kubelet: delete ${ns}/${name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
      return;
    }
    const nodeName = obj.spec?.nodeName;
    if (nodeName === undefined || nodeName === '') {
      if (binding.has(uid)) return;
      binding.add(uid);
      const res = await client.request('POST', `${path}/binding`, { apiVersion: 'v1', kind: 'Binding', metadata: { name, uid }, target: { apiVersion: 'v1', kind: 'Node', name: NODE_NAME } });
      if (res.status >= 300 && res.status !== 409) log(`kubelet: bind ${ns}/${name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
      return;
    }
    if (nodeName === NODE_NAME && !pods.has(uid)) await startPod(obj, uid);
  };

  /** Events of one pod are handled in order; different pods in parallel. */
  const enqueue = (uid: string, fn: () => Promise<void>): void => {
    const next = (queues.get(uid) ?? Promise.resolve()).then(fn).catch((err: unknown) => {
      if (!abort.signal.aborted) log(`kubelet: ${errText(err)}`);
    });
    queues.set(uid, next);
    void next.then(() => {
      if (queues.get(uid) === next) queues.delete(uid);
    });
  };

  const onEvent = (event: WatchEvent): void => {
    const obj = event.object as PodObject;
    const uid = obj.metadata?.uid;
    if (uid !== undefined && (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED')) enqueue(uid, () => handle(event.type, obj));
  };

  const loop = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      try {
        const list = await client.request('GET', '/api/v1/pods', undefined, undefined, abort.signal);
        if (list.status !== 200) throw new Error(`list pods: HTTP ${list.status}`);
        const parsed = JSON.parse(list.body) as { metadata: { resourceVersion: string }; items: PodObject[] };
        for (const item of parsed.items) onEvent({ type: 'ADDED', object: item as Record<string, unknown> });
        let rv = parsed.metadata.resourceVersion;
        let expired = false;
        while (!abort.signal.aborted && !expired) {
          await client.watch(`/api/v1/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=240&resourceVersion=${rv}`, (event) => {
            if (event.type === 'ERROR') {
              expired = true;
              return;
            }
            const eventRv = (event.object as PodObject).metadata?.resourceVersion;
            if (eventRv !== undefined) rv = eventRv;
            onEvent(event);
          }, abort.signal);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        log(`kubelet: pod watch: ${errText(err)}; listing again`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const looping = loop();

  return {
    port,
    async stop() {
      abort.abort();
      for (const uid of [...pods.keys()]) forget(uid);
      await looping;
      await Promise.allSettled([...queues.values()]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function registerNode(client: KubeClient, port: number, kubeVersion: string): Promise<void> {
  const labels = { 'kubernetes.io/hostname': NODE_NAME, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' };
  const created = await client.request('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME, labels } });
  if (created.status >= 300 && created.status !== 409) throw new Error(`register node: HTTP ${created.status} ${created.body.slice(0, 300)}`);
  const t = now();
  const condition = (type: string, status: string, reason: string, message: string): Record<string, string> =>
    ({ type, status, reason, message, lastHeartbeatTime: t, lastTransitionTime: t });
  const resources = { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  const status = {
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
    ],
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: NODE_NAME }],
    daemonEndpoints: { kubeletEndpoint: { Port: port } },
    capacity: resources,
    allocatable: resources,
    nodeInfo: {
      machineID: 'tsko', systemUUID: 'tsko', bootID: 'tsko', kernelVersion: 'tsko', osImage: 'tsko stand-in kubelet',
      containerRuntimeVersion: 'containerd://tsko', kubeletVersion: kubeVersion, kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'amd64',
    },
  };
  const patched = await client.request('PATCH', `/api/v1/nodes/${NODE_NAME}/status`, { status }, 'application/merge-patch+json');
  if (patched.status >= 300) throw new Error(`node status: HTTP ${patched.status} ${patched.body.slice(0, 300)}`);
  // TaintNodesByCondition gave the new node a not-ready taint that only the node-lifecycle
  // controller (not run here, so nothing evicts pods) would lift.
  const untainted = await client.request('PATCH', `/api/v1/nodes/${NODE_NAME}`, { spec: { taints: null } }, 'application/merge-patch+json');
  if (untainted.status >= 300) throw new Error(`node taints: HTTP ${untainted.status} ${untainted.body.slice(0, 300)}`);
}

function pullError(image: string): string {
  return `failed to pull and unpack image "${image}": failed to resolve reference "${image}": not found`;
}

function crashBackOff(pod: PodState, c: Container): string {
  return `Back-off restarting failed container ${c.name} in pod ${pod.name}_${pod.namespace}(${pod.uid})`;
}

function containerStatus(pod: PodState, c: Container): Record<string, unknown> {
  const common = { name: c.name, image: c.image, imageID: c.behaviour.kind === 'image-pull' ? '' : c.image, restartCount: c.restartCount };
  switch (c.behaviour.kind) {
    case 'ready':
      return { ...common, containerID: c.containerId, ready: true, started: true, state: { running: { startedAt: c.startedAt } } };
    case 'crash': {
      const exitCode = c.behaviour.exitCode ?? 1;
      return {
        ...common,
        containerID: c.containerId,
        ready: false,
        started: false,
        state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${c.backoffSeconds * 10}s restarting failed container=${c.name} pod=${pod.name}_${pod.namespace}(${pod.uid})` } },
        lastState: { terminated: { exitCode, reason: 'Error', startedAt: c.startedAt, finishedAt: c.finishedAt ?? c.startedAt, containerID: c.containerId } },
      };
    }
    case 'image-pull':
      return {
        ...common,
        ready: false,
        started: false,
        state: {
          waiting: c.pulling
            ? { reason: 'ErrImagePull', message: pullError(c.image) }
            : { reason: 'ImagePullBackOff', message: `Back-off pulling image "${c.image}"` },
        },
      };
  }
}

function podStatus(pod: PodState): Record<string, unknown> {
  const ready = pod.containers.every((c) => c.behaviour.kind === 'ready');
  const pulling = pod.containers.some((c) => c.behaviour.kind === 'image-pull');
  const notReady = pod.containers.filter((c) => c.behaviour.kind !== 'ready').map((c) => c.name);
  const t = pod.startedAt;
  const cond = (type: string, ok: boolean): Record<string, unknown> => ({
    type,
    status: ok ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: t,
    ...(ok ? {} : { reason: 'ContainersNotReady', message: `containers with unready status: [${notReady.join(' ')}]` }),
  });
  return {
    phase: pulling ? 'Pending' : 'Running',
    conditions: [
      { type: 'PodReadyToStartContainers', status: 'True', lastProbeTime: null, lastTransitionTime: t },
      { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: t },
      cond('Ready', ready),
      cond('ContainersReady', ready),
      { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: t },
    ],
    hostIP: '127.0.0.1',
    hostIPs: [{ ip: '127.0.0.1' }],
    podIP: pod.podIp,
    podIPs: [{ ip: pod.podIp }],
    startTime: t,
    containerStatuses: pod.containers.map((c) => containerStatus(pod, c)),
  };
}
