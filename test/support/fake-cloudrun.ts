// A Cloud Run Admin API v2 fake (Cloud Run cannot run here): services get and patch (etag checked,
// the update mask honoured, a named revision never reused), long-running operations with get and
// :wait, and a revision that gets ready after a delay — or, by mode, fails with a terminal
// condition or never finishes. It also plays the GCE metadata server, so Application Default
// Credentials can get (and renew) tokens from it. test/deploy-cloudrun.test.ts holds it to the
// official @google-cloud/run client before tsko is tested against it.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export type RevisionMode = 'ready' | 'fail' | 'hang';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string>;
  user: string | undefined;
  body: string;
}

export interface FakeCloudRun {
  /** http://127.0.0.1:PORT (the API base, and GCE_METADATA_HOST's host:port). */
  url: string;
  host: string;
  calls: RecordedCall[];
  mode: RevisionMode;
  /** token → identity; a token missing here gets 401. */
  tokens: Map<string, string>;
  /** Identities that get 403 PERMISSION_DENIED. */
  forbidden: Set<string>;
  /** Tokens the metadata server handed out, in order. */
  issued: string[];
  /** Whether the metadata server registers the tokens it hands out as valid. */
  metadataTokensValid: boolean;
  addService(project: string, region: string, name: string, image: string): Obj;
  service(project: string, region: string, name: string): Obj | undefined;
  stop(): Promise<void>;
}

const SERVICE_TYPE = 'type.googleapis.com/google.cloud.run.v2.Service';
export const METADATA_EMAIL = 'tsko-test@fake-project.iam.gserviceaccount.com';
const TRAFFIC_TYPES = ['TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED', 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION'];

export async function startFakeCloudRun(options: { stepMs?: number } = {}): Promise<FakeCloudRun> {
  const stepMs = options.stepMs ?? 200;
  const services = new Map<string, Obj>();
  const operations = new Map<string, Obj>();
  const revisions = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  const calls: RecordedCall[] = [];

  const later = (fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
      for (const wake of [...waiters]) wake();
    }, stepMs);
    timers.add(timer);
  };
  const send = (res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, code: number, status: string, message: string) => send(res, code, { error: { code, message, status } });
  const etag = () => `"${randomBytes(6).toString('hex')}"`;
  const short = (name: string) => name.split('/').pop() as string;
  const trafficType = (t: unknown) => (typeof t === 'number' ? TRAFFIC_TYPES[t] : t) ?? TRAFFIC_TYPES[1];

  /** Fills trafficStatuses and uri from traffic, as the control plane reports them. */
  const route = (svc: Obj) => {
    const host = `${short(svc.name)}-x7fake-uc.a.run.app`;
    svc.uri = `https://${host}`;
    svc.trafficStatuses = (svc.traffic as Obj[]).map((t) => ({
      type: t.type,
      ...(t.type === TRAFFIC_TYPES[1] ? {} : { revision: t.revision }),
      percent: t.percent ?? 0,
      ...(t.tag ? { tag: t.tag, uri: `https://${t.tag}---${host}` } : {}),
    }));
  };

  const runtime: FakeCloudRun = {
    url: '',
    host: '',
    calls,
    mode: 'ready',
    tokens: new Map(),
    forbidden: new Set(),
    issued: [],
    metadataTokensValid: true,
    addService(project, region, name, image) {
      const full = `projects/${project}/locations/${region}/services/${name}`;
      const revision = `${full}/revisions/${name}-00001-abc`;
      revisions.add(short(revision));
      const svc: Obj = {
        name: full,
        uid: randomBytes(8).toString('hex'),
        generation: '1',
        observedGeneration: '1',
        etag: etag(),
        labels: {},
        template: { revision: '', containers: [{ name: 'hello-1', image, ports: [{ name: 'http1', containerPort: 8080 }] }], executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2' },
        traffic: [{ type: TRAFFIC_TYPES[1], percent: 100 }],
        reconciling: false,
        terminalCondition: { type: 'Ready', state: 'CONDITION_SUCCEEDED' },
        conditions: [{ type: 'RoutesReady', state: 'CONDITION_SUCCEEDED' }, { type: 'ConfigurationsReady', state: 'CONDITION_SUCCEEDED' }],
        latestReadyRevision: revision,
        latestCreatedRevision: revision,
      };
      route(svc);
      services.set(full, svc);
      return svc;
    },
    service: (project, region, name) => services.get(`projects/${project}/locations/${region}/services/${name}`),
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const wake of [...waiters]) wake();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const metadata = (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (req.headers['metadata-flavor'] !== 'Google') return fail(res, 403, 'PERMISSION_DENIED', 'Missing Metadata-Flavor:Google header');
    const headers = { 'metadata-flavor': 'Google' };
    if (path.endsWith('/service-accounts/default/token')) {
      const token = `meta-${runtime.issued.length + 1}-${randomBytes(4).toString('hex')}`;
      runtime.issued.push(token);
      if (runtime.metadataTokensValid) runtime.tokens.set(token, METADATA_EMAIL);
      return send(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' }, headers);
    }
    if (path.endsWith('/service-accounts/default/email')) {
      res.writeHead(200, { 'content-type': 'text/plain', ...headers });
      return res.end(METADATA_EMAIL);
    }
    if (path.endsWith('/project/project-id')) {
      res.writeHead(200, { 'content-type': 'text/plain', ...headers });
      return res.end('fake-project');
    }
    return send(res, 200, {}, headers);
  };

  const patch = (res: ServerResponse, svc: Obj, body: Obj, mask: string[]) => {
    if (body.etag && body.etag !== svc.etag) return fail(res, 409, 'ABORTED', `Conflict for resource '${short(svc.name)}': version '${body.etag}' was specified but current version is '${svc.etag}'.`);
    const fields = mask.length > 0 ? mask : Object.keys(body).filter((k) => k === 'template' || k === 'traffic');
    const wanted = (body.template?.revision as string | undefined) || '';
    if (fields.includes('template') && wanted && revisions.has(wanted)) {
      return fail(res, 409, 'ALREADY_EXISTS', `Revision named '${wanted}' with different configuration already exists.`);
    }
    const generation = Number(svc.generation) + 1;
    for (const field of fields) if (body[field] !== undefined) svc[field] = structuredClone(body[field]);
    svc.traffic = (svc.traffic as Obj[]).map((t) => ({ ...t, type: trafficType(t.type) }));
    const revisionName = wanted || `${short(svc.name)}-${String(generation).padStart(5, '0')}-${randomBytes(2).toString('hex').slice(0, 3)}`;
    revisions.add(revisionName);
    const revision = `${svc.name}/revisions/${revisionName}`;
    Object.assign(svc, {
      generation: String(generation),
      etag: etag(),
      reconciling: true,
      latestCreatedRevision: revision,
      terminalCondition: { type: 'Ready', state: 'CONDITION_RECONCILING' },
      conditions: [{ type: 'RoutesReady', state: 'CONDITION_PENDING' }, { type: 'ConfigurationsReady', state: 'CONDITION_RECONCILING', message: 'Creating Revision.' }],
    });
    const name = `${svc.name.replace(/\/services\/.*$/, '')}/operations/${randomBytes(8).toString('hex')}`;
    const operation: Obj = { name, metadata: { '@type': SERVICE_TYPE, ...structuredClone(svc) }, done: false };
    operations.set(name, operation);
    if (runtime.mode !== 'hang') {
      const mode = runtime.mode;
      later(() => {
        svc.reconciling = false;
        svc.observedGeneration = String(generation);
        if (mode === 'ready') {
          svc.latestReadyRevision = revision;
          svc.terminalCondition = { type: 'Ready', state: 'CONDITION_SUCCEEDED' };
          svc.conditions = [{ type: 'RoutesReady', state: 'CONDITION_SUCCEEDED' }, { type: 'ConfigurationsReady', state: 'CONDITION_SUCCEEDED' }];
          route(svc);
          Object.assign(operation, { done: true, metadata: { '@type': SERVICE_TYPE, ...structuredClone(svc) }, response: { '@type': SERVICE_TYPE, ...structuredClone(svc) } });
        } else {
          const message = `Revision '${revisionName}' is not ready and cannot serve traffic. The user-provided container failed to start and listen on the port defined provided by the PORT=8080 environment variable within the allocated timeout.`;
          svc.terminalCondition = { type: 'Ready', state: 'CONDITION_FAILED', reason: 'REVISION_FAILED', message };
          svc.conditions = [{ type: 'ConfigurationsReady', state: 'CONDITION_FAILED', message }, { type: 'RoutesReady', state: 'CONDITION_FAILED', message }];
          Object.assign(operation, { done: true, metadata: { '@type': SERVICE_TYPE, ...structuredClone(svc) }, error: { code: 9, message } });
        }
      });
    }
    return send(res, 200, operation);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = decodeURIComponent(url.pathname);
    if (path.startsWith('/computeMetadata/')) return metadata(req, res, path);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const user = token === undefined ? undefined : runtime.tokens.get(token);
    calls.push({ method: req.method ?? 'GET', path, query: Object.fromEntries(url.searchParams), user, body });
    if (user === undefined) {
      return fail(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
    }
    const service = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/services\/[^/:]+)$/.exec(path);
    if (service) {
      const name = service[1] as string;
      if (runtime.forbidden.has(user)) {
        const permission = req.method === 'GET' ? 'run.services.get' : 'run.services.update';
        return fail(res, 403, 'PERMISSION_DENIED', `Permission '${permission}' denied on resource '${name}' (or resource may not exist).`);
      }
      const svc = services.get(name);
      if (!svc) return fail(res, 404, 'NOT_FOUND', `Resource '${short(name)}' of kind 'SERVICE' in region '${name.split('/')[3]}' in project '${name.split('/')[1]}' does not exist.`);
      if (req.method === 'GET') return send(res, 200, svc);
      if (req.method === 'PATCH') {
        const mask = (url.searchParams.get('updateMask') ?? '').split(',').map((m) => m.trim()).filter(Boolean);
        return patch(res, svc, JSON.parse(body || '{}') as Obj, mask);
      }
      return fail(res, 405, 'INVALID_ARGUMENT', `${req.method} not supported`);
    }
    const op = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/operations\/[^/:]+)(:wait)?$/.exec(path);
    if (op) {
      const operation = operations.get(op[1] as string);
      if (!operation) return fail(res, 404, 'NOT_FOUND', `Operation ${op[1]} not found.`);
      if (op[2] && req.method === 'POST') {
        const seconds = Number(/^(\d+(?:\.\d+)?)s$/.exec((JSON.parse(body || '{}') as Obj).timeout ?? '')?.[1] ?? '30');
        const deadline = Date.now() + Math.min(seconds, 30) * 1000;
        while (!operation.done && Date.now() < deadline) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, deadline - Date.now());
            function done() {
              clearTimeout(timer);
              waiters.delete(done);
              resolve();
            }
            waiters.add(done);
          });
        }
        return send(res, 200, operation);
      }
      if (req.method === 'GET' && !op[2]) return send(res, 200, operation);
    }
    return fail(res, 404, 'NOT_FOUND', `no route for ${req.method} ${path}`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => fail(res, 500, 'INTERNAL', String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  runtime.host = `127.0.0.1:${port}`;
  runtime.url = `http://${runtime.host}`;
  return runtime;
}
