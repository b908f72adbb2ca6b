// A Cloud Run Admin API v2 fake (Cloud Run cannot run here): services get, create (`POST
// …/services?serviceId=`, an Operation) and patch (etag checked, the update mask honoured, a named
// revision never reused), the service's IAM policy (get, set with its etag, testIamPermissions),
// v1 locations list (what `gcloud run regions list` and the client's listLocations call),
// long-running operations with get and :wait, and a revision that gets ready after a delay — or,
// by mode, fails with a terminal condition or never finishes. Faults as the real API answers them:
// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED naming the permission, SERVICE_DISABLED and
// CONSUMER_INVALID with their google.rpc.ErrorInfo, 404 NOT_FOUND, 409 ALREADY_EXISTS / ABORTED.
// It also plays the GCE metadata server, so Application Default Credentials can get (and renew)
// tokens from it. test/deploy-cloudrun.test.ts holds it to the official @google-cloud/run client
// before tsko is tested against it.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/**
 * ready: the revision serves one step later; fail: it fails and the Operation ends with its error;
 * fail-pending: the service reports the failed revision but the Operation does not end (a
 * reconciliation still running elsewhere); hang: nothing ever happens.
 */
export type RevisionMode = 'ready' | 'fail' | 'fail-pending' | 'hang';

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
  /** Identities that hold no Cloud Run permission (403 PERMISSION_DENIED on every call). */
  forbidden: Set<string>;
  /** Identities that hold only these permissions; an identity in neither map nor `forbidden` holds them all. */
  grants: Map<string, Set<string>>;
  /** Projects whose Cloud Run Admin API is disabled (403 with ErrorInfo SERVICE_DISABLED). */
  disabledProjects: Set<string>;
  /** Projects that do not exist (403 with ErrorInfo CONSUMER_INVALID). */
  missingProjects: Set<string>;
  /** The regions Cloud Run lists for every project. */
  regions: string[];
  /** An organization policy (domain restricted sharing) refuses allUsers in IAM policies. */
  restrictPublicMembers: boolean;
  /** Tokens the metadata server handed out, in order. */
  issued: string[];
  /** Whether the metadata server registers the tokens it hands out as valid. */
  metadataTokensValid: boolean;
  addService(project: string, region: string, name: string, image: string): Obj;
  service(project: string, region: string, name: string): Obj | undefined;
  /** The service's IAM policy as stored (bindings, etag). */
  policy(project: string, region: string, name: string): Obj | undefined;
  stop(): Promise<void>;
}

const SERVICE_TYPE = 'type.googleapis.com/google.cloud.run.v2.Service';
export const METADATA_EMAIL = 'tsko-test@fake-project.iam.gserviceaccount.com';
/** What each call needs, as the real API checks it. */
const PERMISSIONS = {
  get: 'run.services.get',
  create: 'run.services.create',
  update: 'run.services.update',
  getIamPolicy: 'run.services.getIamPolicy',
  setIamPolicy: 'run.services.setIamPolicy',
  operationsGet: 'run.operations.get',
  locationsList: 'run.locations.list',
} as const;
/** An empty policy's etag, as IAM reports it. */
const EMPTY_POLICY_ETAG = 'ACAB';
const MEMBER = /^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal|principalSet):.+)$/;
const TRAFFIC_TYPES = ['TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED', 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION'];

export async function startFakeCloudRun(options: { stepMs?: number } = {}): Promise<FakeCloudRun> {
  const stepMs = options.stepMs ?? 200;
  const services = new Map<string, Obj>();
  const policies = new Map<string, Obj>();
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
  const fail = (res: ServerResponse, code: number, status: string, message: string, details?: Obj[]) => send(res, code, { error: { code, message, status, ...(details ? { details } : {}) } });
  /** A stable fake project number, as the real API's messages name projects by number. */
  const projectNumber = (project: string) => String(100_000_000_000 + [...project].reduce((n, c) => (n * 31 + c.charCodeAt(0)) % 899_999_999_999, 7));
  const errorInfo = (reason: string, metadata: Obj) => ({ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'googleapis.com', metadata });
  /** The project-level refusals every call under projects/P meets first: no such project, API disabled. */
  const projectRefusal = (res: ServerResponse, project: string): boolean => {
    if (runtime.missingProjects.has(project)) {
      const message = `Permission denied on resource project ${project}.`;
      fail(res, 403, 'PERMISSION_DENIED', message, [
        errorInfo('CONSUMER_INVALID', { service: 'run.googleapis.com', consumer: `projects/${project}`, containerInfo: project }),
        { '@type': 'type.googleapis.com/google.rpc.LocalizedMessage', locale: 'en-US', message },
        { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description: 'Google developers console', url: 'https://console.developers.google.com' }] },
      ]);
      return true;
    }
    if (runtime.disabledProjects.has(project)) {
      const number = projectNumber(project);
      const activationUrl = `https://console.developers.google.com/apis/api/run.googleapis.com/overview?project=${number}`;
      const message = `Cloud Run Admin API has not been used in project ${number} before or it is disabled. Enable it by visiting ${activationUrl} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.`;
      fail(res, 403, 'PERMISSION_DENIED', message, [
        errorInfo('SERVICE_DISABLED', { service: 'run.googleapis.com', consumer: `projects/${number}`, serviceTitle: 'Cloud Run Admin API', containerInfo: number, activationUrl }),
        { '@type': 'type.googleapis.com/google.rpc.LocalizedMessage', locale: 'en-US', message },
        { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description: 'Google developers console API activation', url: activationUrl }] },
      ]);
      return true;
    }
    return false;
  };
  const allowed = (user: string, permission: string) => {
    if (runtime.forbidden.has(user)) return false;
    const granted = runtime.grants.get(user);
    return granted === undefined || granted.has(permission);
  };
  const denied = (res: ServerResponse, permission: string, resource: string) =>
    fail(res, 403, 'PERMISSION_DENIED', `Permission '${permission}' denied on resource '${resource}' (or resource may not exist).`);
  const policyEtag = () => randomBytes(8).toString('base64');
  /** A traffic target naming a revision that neither exists nor is the one being created is refused. */
  const unknownRevision = (traffic: Obj[] | undefined, creating: string) =>
    (traffic ?? []).find((t) => trafficType(t.type) === TRAFFIC_TYPES[2] && t.revision !== creating && !revisions.has(t.revision as string))?.revision as string | undefined;
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
    grants: new Map(),
    disabledProjects: new Set(),
    missingProjects: new Set(),
    regions: ['asia-northeast1', 'europe-west1', 'europe-west4', 'us-central1', 'us-east1', 'us-west1'],
    restrictPublicMembers: false,
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
    policy: (project, region, name) => policies.get(`projects/${project}/locations/${region}/services/${name}`),
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
    if (fields.includes('traffic')) {
      const unknown = unknownRevision(body.traffic as Obj[] | undefined, wanted);
      if (unknown !== undefined) return fail(res, 400, 'INVALID_ARGUMENT', `Revision named '${unknown}' does not exist.`);
    }
    const generation = Number(svc.generation) + 1;
    for (const field of fields) if (body[field] !== undefined) svc[field] = structuredClone(body[field]);
    svc.traffic = (svc.traffic as Obj[]).map((t) => ({ ...t, type: trafficType(t.type) }));
    return send(res, 200, rollOut(svc, generation, wanted));
  };

  /** A new generation of the service: its revision is created, and gets ready (or fails) one step later. */
  const rollOut = (svc: Obj, generation: number, wanted: string): Obj => {
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
          const port = (svc.template?.containers?.[0]?.ports?.[0]?.containerPort as number | undefined) ?? 8080;
          const message = `Revision '${revisionName}' is not ready and cannot serve traffic. The user-provided container failed to start and listen on the port defined provided by the PORT=${port} environment variable within the allocated timeout.`;
          svc.terminalCondition = { type: 'Ready', state: 'CONDITION_FAILED', reason: 'REVISION_FAILED', message };
          svc.conditions = [{ type: 'ConfigurationsReady', state: 'CONDITION_FAILED', message }, { type: 'RoutesReady', state: 'CONDITION_FAILED', message }];
          if (mode === 'fail-pending') operation.metadata = { '@type': SERVICE_TYPE, ...structuredClone(svc) };
          else Object.assign(operation, { done: true, metadata: { '@type': SERVICE_TYPE, ...structuredClone(svc) }, error: { code: 9, message } });
        }
      });
    }
    return operation;
  };

  /** services.create: the Service from the body, named by ?serviceId, with the server's defaults. */
  const create = (res: ServerResponse, parent: string, serviceId: string | null, body: Obj, user: string) => {
    if (!serviceId) return fail(res, 400, 'INVALID_ARGUMENT', 'service_id must be specified.');
    const name = `${parent}/services/${serviceId}`;
    if (!allowed(user, PERMISSIONS.create)) return denied(res, PERMISSIONS.create, name);
    if (!/^[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?$/.test(serviceId)) {
      return fail(res, 400, 'INVALID_ARGUMENT', `service_id '${serviceId}' is invalid: it must use only lowercase alphanumeric characters and dashes, cannot begin or end with a dash, and cannot be longer than 49 characters.`);
    }
    if (services.has(name)) return fail(res, 409, 'ALREADY_EXISTS', `Resource '${serviceId}' already exists.`);
    const containers = (body.template?.containers ?? []) as Obj[];
    if (containers.length === 0) return fail(res, 400, 'INVALID_ARGUMENT', 'service.template.containers: at least one container must be specified.');
    const missing = containers.findIndex((c) => !c.image);
    if (missing >= 0) return fail(res, 400, 'INVALID_ARGUMENT', `service.template.containers[${missing}].image: Required field is missing.`);
    const wanted = (body.template?.revision as string | undefined) || '';
    if (wanted && !wanted.startsWith(`${serviceId}-`)) return fail(res, 400, 'INVALID_ARGUMENT', `service.template.revision: must be prefixed with '${serviceId}-'.`);
    const unknown = unknownRevision(body.traffic as Obj[] | undefined, wanted);
    if (unknown !== undefined) return fail(res, 400, 'INVALID_ARGUMENT', `Revision named '${unknown}' does not exist.`);
    const now = new Date().toISOString();
    const svc: Obj = {
      ...structuredClone(body),
      name,
      uid: randomBytes(8).toString('hex'),
      generation: '1',
      labels: body.labels ?? {},
      annotations: body.annotations ?? {},
      createTime: now,
      updateTime: now,
      creator: user,
      lastModifier: user,
      ingress: body.ingress || 'INGRESS_TRAFFIC_ALL',
      launchStage: body.launchStage || 'GA',
      template: {
        ...structuredClone(body.template),
        revision: wanted,
        containers: containers.map((c) => ({
          ...structuredClone(c),
          // The server's default: one HTTP/1 port 8080; a port without a name is http1.
          ports: ((c.ports as Obj[] | undefined) ?? [{ containerPort: 8080 }]).map((port) => ({ name: port.name || 'http1', containerPort: port.containerPort ?? 8080 })),
        })),
        serviceAccount: body.template?.serviceAccount || `${projectNumber(name.split('/')[1] as string)}-compute@developer.gserviceaccount.com`,
        maxInstanceRequestConcurrency: body.template?.maxInstanceRequestConcurrency || 80,
        timeout: body.template?.timeout || '300s',
      },
      traffic: ((body.traffic as Obj[] | undefined)?.length ? (body.traffic as Obj[]) : [{ type: TRAFFIC_TYPES[1], percent: 100 }]).map((t) => ({ ...t, type: trafficType(t.type) })),
      etag: etag(),
    };
    services.set(name, svc);
    policies.set(name, { version: 1, etag: EMPTY_POLICY_ETAG });
    return send(res, 200, rollOut(svc, 1, wanted));
  };

  /** getIamPolicy, setIamPolicy and testIamPermissions on one service. */
  const iam = (req: IncomingMessage, res: ServerResponse, name: string, verb: string, body: Obj, user: string) => {
    if (verb === 'testIamPermissions' && req.method === 'POST') {
      // Answered for a service that does not exist yet too (from the project's policy), as gcloud relies on before a create.
      const asked = (body.permissions ?? []) as string[];
      const invalid = asked.find((p) => !/^run\.[a-zA-Z]+\.[a-zA-Z]+$/.test(p));
      if (invalid) return fail(res, 400, 'INVALID_ARGUMENT', `Permission ${invalid} is not valid for this resource.`);
      const granted = asked.filter((p) => allowed(user, p));
      return send(res, 200, granted.length > 0 ? { permissions: granted } : {});
    }
    const svc = services.get(name);
    const permission = verb === 'getIamPolicy' ? PERMISSIONS.getIamPolicy : PERMISSIONS.setIamPolicy;
    if (!allowed(user, permission)) return denied(res, permission, name);
    if (!svc) return fail(res, 404, 'NOT_FOUND', `Resource '${short(name)}' of kind 'SERVICE' in region '${name.split('/')[3]}' in project '${name.split('/')[1]}' does not exist.`);
    const policy = policies.get(name) as Obj;
    if (verb === 'getIamPolicy' && req.method === 'GET') return send(res, 200, policy);
    if (verb !== 'setIamPolicy' || req.method !== 'POST') return fail(res, 404, 'NOT_FOUND', `no route for ${req.method} ${name}:${verb}`);
    const wanted = body.policy as Obj | undefined;
    if (!wanted) return fail(res, 400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.');
    if (wanted.etag && wanted.etag !== policy.etag) {
      return fail(res, 409, 'ABORTED', 'There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.');
    }
    const bindings = (wanted.bindings ?? []) as Obj[];
    for (const binding of bindings) {
      if (!/^roles\/.+/.test(binding.role ?? '')) return fail(res, 400, 'INVALID_ARGUMENT', `Role ${binding.role} is not supported for this resource.`);
      const bad = ((binding.members ?? []) as string[]).find((m) => !MEMBER.test(m));
      if (bad) return fail(res, 400, 'INVALID_ARGUMENT', `Invalid member: ${bad}`);
      if (runtime.restrictPublicMembers && ((binding.members ?? []) as string[]).some((m) => m === 'allUsers' || m === 'allAuthenticatedUsers')) {
        return fail(res, 400, 'FAILED_PRECONDITION', 'One or more users named in the policy do not belong to a permitted customer.');
      }
    }
    const stored = { version: 1, etag: policyEtag(), ...(bindings.length > 0 ? { bindings: structuredClone(bindings) } : {}) };
    policies.set(name, stored);
    return send(res, 200, stored);
  };

  /** v1 projects.locations.list: every region the fake knows (one page). */
  const locations = (res: ServerResponse, project: string, user: string) => {
    if (!allowed(user, PERMISSIONS.locationsList)) return denied(res, PERMISSIONS.locationsList, `projects/${project}`);
    return send(res, 200, {
      locations: runtime.regions.map((id) => ({ name: `projects/${project}/locations/${id}`, locationId: id, displayName: id, labels: { 'cloud.googleapis.com/region': id } })),
    });
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
    const project = /^\/v[12]\/projects\/([^/]+)/.exec(path)?.[1];
    if (project !== undefined && projectRefusal(res, project)) return;
    const list = /^\/v1\/projects\/([^/]+)\/locations$/.exec(path);
    if (list && req.method === 'GET') return locations(res, list[1] as string, user);
    const region = /^\/v2\/projects\/[^/]+\/locations\/([^/]+)/.exec(path)?.[1];
    if (region !== undefined && !runtime.regions.includes(region)) {
      // The real API's answer for an unknown region is unverified; the preflight checks the list first.
      return fail(res, 404, 'NOT_FOUND', `Location '${region}' is not found.`);
    }
    const parent = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+)\/services$/.exec(path);
    if (parent && req.method === 'POST') return create(res, parent[1] as string, url.searchParams.get('serviceId'), JSON.parse(body || '{}') as Obj, user);
    const policy = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/services\/[^/:]+):(getIamPolicy|setIamPolicy|testIamPermissions)$/.exec(path);
    if (policy) return iam(req, res, policy[1] as string, policy[2] as string, JSON.parse(body || '{}') as Obj, user);
    const service = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/services\/[^/:]+)$/.exec(path);
    if (service) {
      const name = service[1] as string;
      const permission = req.method === 'GET' ? PERMISSIONS.get : PERMISSIONS.update;
      if (!allowed(user, permission)) return denied(res, permission, name);
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
      if (!allowed(user, PERMISSIONS.operationsGet)) return denied(res, PERMISSIONS.operationsGet, op[1] as string);
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
