// A Kubernetes API server fake for what cannot run here (no cluster): HTTPS with a self-signed
// certificate and bearer-token users, the discovery documents kubectl needs, Deployments (GET,
// LIST, chunked WATCH, the three patch types and server-side apply), ReplicaSets and Pods, pod logs,
// and a simulated controller that moves a Deployment's status after a delay — or, by mode, leaves
// it stuck, crash-looping, unable to pull, unschedulable or past its progress deadline.
// test/deploy-kubernetes.test.ts holds it to the installed kubectl before tsko is tested on it.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { jsonPatch, mergePatch, PatchTestFailed, strategicMerge } from './kube-patch.js';

export type RolloutMode = 'normal' | 'stuck' | 'image-pull' | 'crash' | 'pending' | 'deadline';

export interface FakeKubeOptions {
  /** Where the certificate goes. */
  dir: string;
  /** How long the simulated controller takes per step (default 150 ms). */
  stepMs?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  accept: string | undefined;
  /** The bearer token's user, or undefined when none was accepted. */
  user: string | undefined;
  userAgent: string | undefined;
  body: string;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FakeKube {
  /** https://127.0.0.1:PORT */
  url: string;
  /** Base64 PEM of the CA (the self-signed cert), for certificate-authority-data. */
  caData: string;
  requests: RecordedRequest[];
  mode: RolloutMode;
  /** token → user; a token missing here gets 401. */
  tokens: Map<string, string>;
  /** Users that may only read (PATCH gets 403). */
  readOnly: Set<string>;
  /** The log lines a crash-looping container printed. */
  crashLog: string;
  /** The next watch is answered with a 410 Expired ERROR event, as a real apiserver answers a resourceVersion too old for its watch cache. */
  expireNextWatch: boolean;
  addDeployment(namespace: string, name: string, containers: Array<{ name: string; image: string }>, replicas?: number): void;
  deployment(namespace: string, name: string): Obj | undefined;
  object(apiPath: string): Obj | undefined;
  /** A kubeconfig with one context `fake` whose user has `user` (token or exec). */
  kubeconfig(user: Obj, options?: { context?: string; namespace?: string }): string;
  stop(): Promise<void>;
}

const APPS = 'apps/v1';

function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'kube.crt');
  const key = join(dir, 'kube.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], {
    stdio: 'ignore',
    timeout: 30_000,
  });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

const RESOURCES_V1 = [
  { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list', 'watch'], shortNames: ['po'] },
  { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
  { name: 'services', singularName: 'service', namespaced: true, kind: 'Service', verbs: ['create', 'get', 'list', 'patch', 'update'], shortNames: ['svc'] },
  { name: 'configmaps', singularName: 'configmap', namespaced: true, kind: 'ConfigMap', verbs: ['create', 'get', 'list', 'patch', 'update'], shortNames: ['cm'] },
  { name: 'namespaces', singularName: 'namespace', namespaced: false, kind: 'Namespace', verbs: ['create', 'get', 'list'], shortNames: ['ns'] },
];
const RESOURCES_APPS = [
  { name: 'deployments', singularName: 'deployment', namespaced: true, kind: 'Deployment', verbs: ['create', 'get', 'list', 'patch', 'update', 'watch'], shortNames: ['deploy'], categories: ['all'] },
  { name: 'deployments/status', singularName: '', namespaced: true, kind: 'Deployment', verbs: ['get', 'patch', 'update'] },
  { name: 'replicasets', singularName: 'replicaset', namespaced: true, kind: 'ReplicaSet', verbs: ['get', 'list', 'watch'], shortNames: ['rs'] },
];

export async function startFakeKube(options: FakeKubeOptions): Promise<FakeKube> {
  const { cert, key } = selfSigned(options.dir);
  const stepMs = options.stepMs ?? 150;
  /** apiPath (`/apis/apps/v1/namespaces/ns/deployments/name`) → object. */
  const store = new Map<string, Obj>();
  const watchers = new Set<{ prefix: string; name: string | undefined; res: ServerResponse }>();
  const timers = new Set<NodeJS.Timeout>();
  let resourceVersion = 1000;
  const requests: RecordedRequest[] = [];

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const save = (path: string, object: Obj, type: 'ADDED' | 'MODIFIED') => {
    object.metadata.resourceVersion = String(++resourceVersion);
    store.set(path, object);
    const prefix = path.slice(0, path.lastIndexOf('/'));
    for (const w of watchers) {
      if (w.prefix === prefix && (w.name === undefined || w.name === object.metadata.name)) w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  };

  const podsPath = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
  const rsPath = (ns: string) => `/apis/apps/v1/namespaces/${ns}/replicasets`;

  /** The simulated deployment controller and kubelet, for one spec change. */
  const reconcile = (path: string, generation: number) => {
    const current = () => {
      const d = store.get(path);
      return d && d.metadata.generation === generation ? d : undefined;
    };
    later(stepMs, () => {
      const d = current();
      if (!d) return;
      const ns = d.metadata.namespace as string;
      const replicas = (d.spec.replicas ?? 1) as number;
      const template = d.spec.template;
      const hash = createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10);
      const revision = String(Number(d.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? '0') + 1);
      const rsName = `${d.metadata.name}-${hash}`;
      save(`${rsPath(ns)}/${rsName}`, {
        apiVersion: APPS,
        kind: 'ReplicaSet',
        metadata: {
          name: rsName,
          namespace: ns,
          uid: randomBytes(8).toString('hex'),
          labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash },
          annotations: { 'deployment.kubernetes.io/revision': revision },
          ownerReferences: [{ apiVersion: APPS, kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid, controller: true }],
        },
        spec: { replicas, template },
      }, 'ADDED');
      d.metadata.annotations = { ...(d.metadata.annotations ?? {}), 'deployment.kubernetes.io/revision': revision };
      const oldAvailable = (d.status?.availableReplicas ?? 0) as number;
      const podName = `${rsName}-${randomBytes(3).toString('hex')}`;
      const pod = (status: Obj): Obj => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: podName, namespace: ns, labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash } },
        spec: { containers: template.spec.containers },
        status,
      });
      const first = template.spec.containers[0]?.name as string;
      const status: Obj = { ...(d.status ?? {}), observedGeneration: generation };
      switch (runtime.mode) {
        case 'deadline':
          status.conditions = [{ type: 'Available', status: 'True' }, { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${rsName}" has timed out progressing.` }];
          status.updatedReplicas = 1;
          status.replicas = oldAvailable + 1;
          break;
        case 'image-pull':
        case 'crash':
        case 'pending':
        case 'stuck': {
          status.updatedReplicas = 1;
          status.replicas = oldAvailable + 1;
          status.availableReplicas = oldAvailable;
          const states: Record<string, Obj> = {
            'image-pull': { phase: 'Pending', containerStatuses: [{ name: first, ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${template.spec.containers[0]?.image}"` } } }] },
            crash: { phase: 'Running', containerStatuses: [{ name: first, ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } }, lastState: { terminated: { exitCode: 2, reason: 'Error' } } }] },
            pending: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient cpu.' }] },
            stuck: { phase: 'Running', containerStatuses: [{ name: first, ready: false, restartCount: 0, state: { running: { startedAt: new Date().toISOString() } } }] },
          };
          save(`${podsPath(ns)}/${podName}`, pod(states[runtime.mode] as Obj), 'ADDED');
          break;
        }
        default:
          // Step 1: new replicas up, old ones still terminating; step 2: all available.
          status.updatedReplicas = replicas;
          status.replicas = replicas + oldAvailable;
          status.availableReplicas = oldAvailable;
          status.conditions = [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated' }];
          later(stepMs, () => {
            const again = current();
            if (!again) return;
            again.status = { ...again.status, replicas, updatedReplicas: replicas, availableReplicas: replicas, readyReplicas: replicas, conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }, { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }] };
            for (const [p, o] of store) if (p.startsWith(`${podsPath(ns)}/`) && o.metadata.labels?.app === template.metadata?.labels?.app) store.delete(p);
            save(`${podsPath(ns)}/${podName}`, pod({ phase: 'Running', containerStatuses: template.spec.containers.map((c: Obj) => ({ name: c.name, ready: true, restartCount: 0, state: { running: {} } })) }), 'ADDED');
            save(path, again, 'MODIFIED');
          });
      }
      d.status = status;
      save(path, d, 'MODIFIED');
    });
  };

  /** Stores a Deployment and bumps its generation when its spec changed. */
  const putDeployment = (path: string, next: Obj, previous: Obj | undefined, settle = true) => {
    next.metadata.generation = (previous?.metadata.generation ?? 0) as number;
    const changed = JSON.stringify(previous?.spec) !== JSON.stringify(next.spec);
    if (changed) next.metadata.generation += 1;
    next.status = previous?.status ?? { observedGeneration: 0, replicas: 0 };
    save(path, next, previous ? 'MODIFIED' : 'ADDED');
    if (changed && settle) reconcile(path, next.metadata.generation);
  };

  const status = (res: ServerResponse, code: number, reason: string, message: string) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  };
  const json = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const user = token === undefined ? undefined : runtime.tokens.get(token);
    requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers['content-type'],
      accept: req.headers.accept,
      user,
      userAgent: req.headers['user-agent'],
      body,
    });
    if (user === undefined) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const path = url.pathname.replace(/\/+$/, '');
    if (path === '/version') return json(res, { major: '1', minor: '32', gitVersion: 'v1.32.4', platform: 'linux/amd64' });
    if (path === '/api') return json(res, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: runtime.url.slice('https://'.length) }] });
    if (path === '/apis') {
      return json(res, { kind: 'APIGroupList', apiVersion: 'v1', groups: [{ name: 'apps', versions: [{ groupVersion: APPS, version: 'v1' }], preferredVersion: { groupVersion: APPS, version: 'v1' } }] });
    }
    if (path === '/api/v1') return json(res, { kind: 'APIResourceList', groupVersion: 'v1', resources: RESOURCES_V1 });
    if (path === '/apis/apps/v1') return json(res, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: APPS, resources: RESOURCES_APPS });
    if (path.startsWith('/openapi')) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    // Namespaces as a cluster has them: default, and every one an object was put in; others are 404.
    const namespace = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path)?.[1];
    if (namespace !== undefined && req.method === 'GET') {
      const known = namespace === 'default' || [...store.keys()].some((p) => p.includes(`/namespaces/${namespace}/`));
      if (!known) return status(res, 404, 'NotFound', `namespaces "${namespace}" not found`);
      return json(res, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace }, status: { phase: 'Active' } });
    }

    const m = /^\/(api\/v1|apis\/apps\/v1)\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?(?:\/(log|status))?$/.exec(path);
    if (!m) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const [, group, ns, resource, name, sub] = m as unknown as [string, string, string, string, string | undefined, string | undefined];
    const known = (group === 'api/v1' ? RESOURCES_V1 : RESOURCES_APPS).find((r) => r.name === resource);
    if (!known) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const collection = `/${group}/namespaces/${ns}/${resource}`;
    const objectPath = name ? `${collection}/${name}` : undefined;
    const gr = group === 'api/v1' ? resource : `${resource}.apps`;

    if (req.method === 'GET' && name === undefined) {
      const selector = url.searchParams.get('labelSelector');
      const field = url.searchParams.get('fieldSelector');
      const wantName = field?.startsWith('metadata.name=') ? field.slice('metadata.name='.length) : undefined;
      const items = [...store.entries()]
        .filter(([p]) => p.startsWith(`${collection}/`))
        .map(([, o]) => o)
        .filter((o) => wantName === undefined || o.metadata.name === wantName)
        .filter((o) => !selector || selector.split(',').every((pair) => { const [k, v] = pair.split('='); return o.metadata.labels?.[k as string] === v; }));
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        // As the apiserver: headers go out at once, before any event (client-go waits for them).
        res.flushHeaders();
        if (runtime.expireNextWatch) {
          runtime.expireNextWatch = false;
          const rv = url.searchParams.get('resourceVersion') ?? '0';
          res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${rv} (${resourceVersion})`, reason: 'Expired', code: 410 } })}\n`);
          return;
        }
        const since = Number(url.searchParams.get('resourceVersion') ?? '0');
        for (const o of items) if (Number(o.metadata.resourceVersion) > since) res.write(`${JSON.stringify({ type: 'MODIFIED', object: o })}\n`);
        const watcher = { prefix: collection, name: wantName, res };
        watchers.add(watcher);
        const seconds = Math.min(Number(url.searchParams.get('timeoutSeconds') ?? '30'), 60);
        const timer = setTimeout(() => res.end(), seconds * 1000);
        res.on('close', () => {
          clearTimeout(timer);
          watchers.delete(watcher);
        });
        return;
      }
      return json(res, { kind: `${known.kind}List`, apiVersion: group === 'api/v1' ? 'v1' : APPS, metadata: { resourceVersion: String(resourceVersion) }, items });
    }
    const current = objectPath ? store.get(objectPath) : undefined;
    if (req.method === 'GET' && sub === 'log') {
      if (!current) return status(res, 404, 'NotFound', `pods "${name}" not found`);
      // As kube-apiserver v1.34: the log stream is served only to an Accept that allows */* (or none).
      const accept = req.headers.accept;
      if (accept !== undefined && accept !== '' && !accept.split(',').some((type) => type.split(';')[0]?.trim() === '*/*')) {
        return status(res, 406, 'NotAcceptable', `only the following media types are accepted: */*`);
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(runtime.crashLog);
    }
    if (req.method === 'GET') {
      if (!current) return status(res, 404, 'NotFound', `${gr} "${name}" not found`);
      return json(res, current);
    }
    if (req.method === 'PATCH' && objectPath && name) {
      if (runtime.readOnly.has(user)) {
        return status(res, 403, 'Forbidden', `${gr} "${name}" is forbidden: User "${user}" cannot patch resource "${resource}" in API group "${group === 'api/v1' ? '' : 'apps'}" in the namespace "${ns}"`);
      }
      const type = (req.headers['content-type'] ?? '').split(';')[0];
      let next: Obj;
      try {
        if (type === 'application/apply-patch+yaml') {
          if (!url.searchParams.get('fieldManager')) return status(res, 422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
          const applied = parseYaml(body) as Obj;
          const base = current ?? { apiVersion: applied.apiVersion, kind: applied.kind, metadata: { name, namespace: ns, uid: randomBytes(8).toString('hex') } };
          next = mergePatch(base, { ...applied, metadata: { ...applied.metadata, namespace: ns } }) as Obj;
        } else {
          if (!current) return status(res, 404, 'NotFound', `${gr} "${name}" not found`);
          const parsed = JSON.parse(body);
          if (type === 'application/strategic-merge-patch+json') next = strategicMerge(current, parsed) as Obj;
          else if (type === 'application/merge-patch+json') next = mergePatch(current, parsed) as Obj;
          else if (type === 'application/json-patch+json') next = jsonPatch(current, parsed) as Obj;
          else return status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`);
        }
      } catch (err) {
        if (err instanceof PatchTestFailed) return status(res, 422, 'Invalid', err.message);
        return status(res, 400, 'BadRequest', `the patch could not be decoded: ${(err as Error).message}`);
      }
      next.metadata.managedFields = [{ manager: url.searchParams.get('fieldManager') ?? 'unknown', operation: type === 'application/apply-patch+yaml' ? 'Apply' : 'Update' }];
      if (resource === 'deployments') putDeployment(objectPath, next, current);
      else save(objectPath, next, current ? 'MODIFIED' : 'ADDED');
      res.writeHead(current ? 200 : 201, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(store.get(objectPath)));
    }
    return status(res, 405, 'MethodNotAllowed', `${req.method} is not supported here`);
  };

  const server: Server = createServer({ cert, key }, (req, res) => {
    handle(req, res).catch((err: unknown) => status(res, 500, 'InternalError', String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const caData = Buffer.from(cert).toString('base64');

  const runtime: FakeKube = {
    url: `https://127.0.0.1:${port}`,
    caData,
    requests,
    mode: 'normal',
    tokens: new Map(),
    readOnly: new Set(),
    crashLog: 'starting hello\npanic: cannot open config: no such file\ngoroutine 1 [running]:\nmain.main()\n',
    expireNextWatch: false,
    addDeployment(ns, name, containers, replicas = 1) {
      const path = `/apis/apps/v1/namespaces/${ns}/deployments/${name}`;
      const labels = { app: name };
      const deployment: Obj = {
        apiVersion: APPS,
        kind: 'Deployment',
        metadata: { name, namespace: ns, uid: randomBytes(8).toString('hex'), labels },
        spec: { replicas, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers } } },
      };
      // Created already rolled out, as a real cluster would have it.
      putDeployment(path, deployment, undefined, false);
      const saved = store.get(path) as Obj;
      saved.status = { observedGeneration: saved.metadata.generation, replicas, updatedReplicas: replicas, availableReplicas: replicas, readyReplicas: replicas };
      save(path, saved, 'MODIFIED');
    },
    deployment: (ns, name) => store.get(`/apis/apps/v1/namespaces/${ns}/deployments/${name}`),
    object: (path) => store.get(path),
    kubeconfig(user, opts = {}) {
      const context = opts.context ?? 'fake';
      return JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'fake-cluster', cluster: { server: runtime.url, 'certificate-authority-data': caData } }],
        users: [{ name: 'fake-user', user }],
        contexts: [{ name: context, context: { cluster: 'fake-cluster', user: 'fake-user', ...(opts.namespace ? { namespace: opts.namespace } : {}) } }],
        'current-context': context,
      }, null, 2);
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const w of watchers) w.res.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return runtime;
}
