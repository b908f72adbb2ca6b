// The Cloud Run target: each deploy reads the service (Admin API v2, over undici), sets its
// container's image to the pushed digest inside the template it read, PATCHes it back with the
// etag, and waits on the returned long-running Operation until the new revision is ready — or
// reports the revision's terminal condition, while the previous revision keeps serving. With
// noTraffic and a tag, the new revision gets a tag URL and none of the traffic.
import { request } from 'undici';
import { abortError, sleep } from '../abort.js';
import { TskoError, isAbortError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { TokenSource } from './gcp-token.js';
import { assertRegistryReachable } from './loopback.js';
import type { DeployRequest, DeployResult, Rollout, Target } from './target.js';

export const DEFAULT_RUN_API = 'https://run.googleapis.com';

export interface CloudRunTargetOptions {
  project: string;
  region: string;
  /** The Cloud Run service (default: the dev service's name). */
  service?: string;
  /** The container to update in a multi-container service (default: the one with a port, else the first). */
  container?: string;
  /** The API's base URL (CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN), default https://run.googleapis.com. */
  apiBase?: string;
  /** Roll a revision that gets no traffic (its tag URL reaches it). */
  noTraffic?: boolean;
  /** A traffic tag for the new revision. */
  tag?: string;
  /** How long the new revision may take to get ready (default 300 s). */
  timeoutMs?: number;
  tokens: TokenSource;
  events: EventBus;
}

export interface RunCondition {
  type?: string;
  state?: string;
  message?: string;
  reason?: string;
  revisionReason?: string;
}

export interface TrafficTarget {
  type?: string;
  revision?: string;
  percent?: number;
  tag?: string;
}

export interface RunService {
  name?: string;
  uri?: string;
  etag?: string;
  generation?: string;
  observedGeneration?: string;
  reconciling?: boolean;
  template?: { revision?: string; containers?: Array<{ name?: string; image?: string; ports?: unknown[] } & Record<string, unknown> > } & Record<string, unknown>;
  traffic?: TrafficTarget[];
  trafficStatuses?: Array<TrafficTarget & { uri?: string }>;
  terminalCondition?: RunCondition;
  conditions?: RunCondition[];
  latestReadyRevision?: string;
  latestCreatedRevision?: string;
}

interface Operation {
  name: string;
  done?: boolean;
  error?: { code?: number; message?: string };
  response?: RunService;
  metadata?: RunService;
}

/** A non-2xx answer, with google.rpc's status name. */
export class CloudRunApiError extends TskoError {
  readonly status: number;
  readonly rpcStatus: string | undefined;
  constructor(status: number, rpcStatus: string | undefined, message: string, hint?: string) {
    super('CLOUDRUN', message, hint === undefined ? {} : { hint });
    this.status = status;
    this.rpcStatus = rpcStatus;
  }
}

const REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 300_000;
const LATEST = 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST';
const REVISION = 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION';

export interface CloudRunTarget extends Target {
  readonly kind: 'cloudrun';
}

export function createCloudRunTarget(options: CloudRunTargetOptions): CloudRunTarget {
  const apiBase = (options.apiBase || DEFAULT_RUN_API).replace(/\/+$/, '');
  return {
    kind: 'cloudrun',
    deploy: (request) => deploy(options, apiBase, request),
    close: async () => {},
  };
}

/** Last segment of `projects/p/locations/r/services/s/revisions/x`. */
function short(name: string | undefined): string | undefined {
  return name?.split('/').pop();
}

async function deploy(options: CloudRunTargetOptions, apiBase: string, req: DeployRequest): Promise<Rollout> {
  const service = options.service ?? req.service;
  const where = `project ${options.project}, region ${options.region}`;
  assertRegistryReachable(req.reference, apiBase, 'Cloud Run', 'set KO_DOCKER_REPO to an Artifact Registry repository (REGION-docker.pkg.dev/PROJECT/REPO) Cloud Run can pull from');
  const api = new Api(options, apiBase, req.signal);
  const path = `/v2/projects/${encodeURIComponent(options.project)}/locations/${encodeURIComponent(options.region)}/services/${encodeURIComponent(service)}`;

  let operation: Operation | undefined;
  let revisionName: string | undefined;
  // Once more when someone else changed the service between our GET and PATCH (etag mismatch).
  for (let attempt = 1; operation === undefined; attempt++) {
    let current: RunService;
    try {
      current = await api.call<RunService>('GET', path);
    } catch (err) {
      if (err instanceof CloudRunApiError && err.status === 404) {
        throw new TskoError('CLOUDRUN', `Cloud Run service "${service}" not found in ${where} (GET ${apiBase}${path})`, {
          hint: `deploy it once (gcloud run deploy ${service} --image=${req.reference} --region=${options.region} --project=${options.project}), or name another with --service`,
        });
      }
      throw err;
    }
    const { body, mask, revision } = updatedService(current, options, req, service);
    revisionName = revision;
    try {
      operation = await api.call<Operation>('PATCH', path, { updateMask: mask }, body);
    } catch (err) {
      const conflict = err instanceof CloudRunApiError && (err.status === 409 || err.rpcStatus === 'ABORTED' || err.rpcStatus === 'FAILED_PRECONDITION');
      if (!conflict || attempt >= 2) throw err;
    }
  }
  req.events.emit({ type: 'rollout', target: 'cloudrun', message: `service ${service}: new revision with ${req.reference}` });
  const started = operation;
  return {
    async ready() {
      const since = performance.now();
      const done = await waitOperation(api, started, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, req.events, service);
      const result = await outcome(api, path, done, options, service, revisionName);
      const ms = Math.round(performance.now() - since);
      req.events.emit({ type: 'rollout', target: 'cloudrun', message: `revision ${result.revision} ready in ${ms} ms${result.url ? ` at ${result.url}` : ''}` });
      if (options.tag && result.url) req.events.emit({ type: 'log', level: 'info', message: `${service}: tag ${options.tag} → ${result.url}` });
      return result;
    },
  };
}

/** The PATCH body: the template as read (the mask replaces it whole), with the new image. */
function updatedService(current: RunService, options: CloudRunTargetOptions, req: DeployRequest, service: string): { body: RunService; mask: string; revision: string | undefined } {
  const template = structuredClone(current.template ?? {});
  const containers = template.containers ?? [];
  const names = containers.map((c, i) => c.name || `#${i + 1}`);
  let index: number;
  if (options.container !== undefined) {
    index = containers.findIndex((c) => c.name === options.container);
    if (index < 0) throw new TskoError('CLOUDRUN', `Cloud Run service "${service}" has no container "${options.container}" (it has: ${names.join(', ') || 'none'})`, { hint: 'check --container' });
  } else if (containers.length <= 1) {
    index = 0;
  } else {
    // The ingress container is the one with a port; sidecars have none.
    index = Math.max(0, containers.findIndex((c) => Array.isArray(c.ports) && c.ports.length > 0));
  }
  if (containers.length === 0) containers.push({});
  (containers[index] as { image?: string }).image = req.reference;
  template.containers = containers;
  // A reused revision name is refused; a tagged revision needs a name the traffic entry can point at.
  let revision: string | undefined;
  if (options.tag || options.noTraffic) {
    revision = `${service}-tsko-${Date.now().toString(36)}`.slice(0, 63);
    template.revision = revision;
  } else {
    delete template.revision;
  }
  const body: RunService = { template, ...(current.etag ? { etag: current.etag } : {}) };
  if (!options.tag && !options.noTraffic) return { body, mask: 'template', revision };

  const ready = short(current.latestReadyRevision);
  let traffic = (current.traffic ?? []).filter((t) => !options.tag || t.tag !== options.tag);
  if (options.noTraffic) {
    // Traffic that follows LATEST would move to the new revision: pin it where it is now.
    if (traffic.some((t) => (t.type ?? LATEST) === LATEST && (t.percent ?? 0) > 0) && !ready) {
      throw new TskoError('CLOUDRUN', `Cloud Run service "${service}" has no ready revision to keep the traffic on`, { hint: 'deploy once without --no-traffic' });
    }
    traffic = traffic.map((t) => ((t.type ?? LATEST) === LATEST ? { ...t, type: REVISION, revision: ready as string } : t));
  }
  traffic.push({ type: REVISION, revision: revision as string, percent: 0, ...(options.tag ? { tag: options.tag } : {}) });
  body.traffic = traffic;
  return { body, mask: 'template,traffic', revision };
}

async function waitOperation(api: Api, first: Operation, timeoutMs: number, events: EventBus, service: string): Promise<Operation> {
  let operation = first;
  const started = performance.now();
  let delay = 200;
  let last = '';
  while (!operation.done) {
    const message = progress(operation.metadata);
    if (message && message !== last) {
      last = message;
      events.emit({ type: 'rollout', target: 'cloudrun', message });
    }
    const left = timeoutMs - (performance.now() - started);
    if (left <= 0) {
      throw new TskoError('CLOUDRUN', `the new revision of Cloud Run service "${service}" was not ready within ${Math.round(timeoutMs / 1000)} s (operation ${short(operation.name)} still running)`, {
        hint: 'the previous revision keeps serving; gcloud run revisions list shows the new one',
      });
    }
    await sleep(Math.min(delay, left), api.signal);
    delay = Math.min(delay * 1.5, 1000);
    operation = await api.call<Operation>('GET', `/v2/${operation.name}`);
  }
  return operation;
}

function progress(service: RunService | undefined): string | undefined {
  if (!service) return undefined;
  const pending = (service.conditions ?? []).find((c) => c.state && c.state !== 'CONDITION_SUCCEEDED');
  if (pending) return `${pending.type ?? 'condition'}: ${pending.state}${pending.message ? ` (${pending.message})` : ''}`;
  const terminal = service.terminalCondition;
  return terminal?.state ? `${terminal.type ?? 'Ready'}: ${terminal.state}` : undefined;
}

async function outcome(api: Api, path: string, operation: Operation, options: CloudRunTargetOptions, service: string, revisionName: string | undefined): Promise<DeployResult> {
  // The Operation's error is terse; the service's terminal condition says what the revision did.
  const after = operation.error ? await api.call<RunService>('GET', path).catch((err: unknown) => {
    if (isAbortError(err)) throw err;
    return undefined;
  }) : operation.response;
  const created = short(after?.latestCreatedRevision) ?? revisionName;
  const ready = short(after?.latestReadyRevision);
  const terminal = after?.terminalCondition;
  const failed = operation.error !== undefined || (terminal?.state !== undefined && terminal.state !== 'CONDITION_SUCCEEDED') || (created !== undefined && ready !== created);
  if (failed) {
    const why = terminal?.state === 'CONDITION_FAILED' && terminal.message ? terminal.message : (operation.error?.message ?? terminal?.message ?? 'it did not get ready');
    const keeps = ready && ready !== created ? `${ready} keeps serving` : 'the previous revision keeps serving';
    throw new TskoError('CLOUDRUN', `revision ${created ?? '(new)'} of Cloud Run service "${service}" failed: ${why}`, { hint: `${keeps}; the next save rolls a new revision` });
  }
  const revision = ready ?? created ?? '(unknown)';
  if (options.tag) {
    const tagged = after?.trafficStatuses?.find((t) => t.tag === options.tag);
    return { revision, ...(tagged?.uri ? { url: tagged.uri } : {}) };
  }
  return { revision, ...(after?.uri ? { url: after.uri } : {}) };
}

/** One authenticated API call at a time, with the 401-refresh-once rule and google.rpc errors. */
class Api {
  readonly signal: AbortSignal;
  private readonly options: CloudRunTargetOptions;
  private readonly base: string;

  constructor(options: CloudRunTargetOptions, base: string, signal: AbortSignal) {
    this.options = options;
    this.base = base;
    this.signal = signal;
  }

  async call<T>(method: 'GET' | 'PATCH' | 'POST', path: string, query: Record<string, string> = {}, body?: unknown): Promise<T> {
    const url = new URL(this.base + path);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    for (let attempt = 1; ; attempt++) {
      const token = await this.options.tokens.get(this.signal);
      const signal = AbortSignal.any([this.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
      let status: number;
      let text: string;
      try {
        const res = await request(url, {
          method,
          headers: {
            authorization: `Bearer ${token.token}`,
            accept: 'application/json',
            'user-agent': 'tsko',
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal,
        });
        status = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        if (this.signal.aborted) throw abortError(this.signal);
        const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
        throw new TskoError('CLOUDRUN', `cannot reach the Cloud Run API at ${this.base}: ${(err as Error).name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : cause}`, { cause: err });
      }
      if (status >= 200 && status < 300) {
        try {
          return JSON.parse(text) as T;
        } catch {
          throw new TskoError('CLOUDRUN', `${method} ${path}: the API answered with something that is not JSON`);
        }
      }
      if (status === 401 && attempt === 1) {
        // An expired token: ask its source for a fresh one, once.
        this.options.tokens.refresh();
        continue;
      }
      throw await this.error(status, text, method, path, token.source);
    }
  }

  private async error(status: number, text: string, method: string, path: string, source: string): Promise<CloudRunApiError> {
    let parsed: { error?: { code?: number; message?: string; status?: string } } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // A proxy's or load balancer's page, not google.rpc.Status.
    }
    const rpc = parsed.error?.status;
    const message = parsed.error?.message || text.trim().split('\n')[0]?.slice(0, 200) || `HTTP ${status}`;
    if (status === 401 || status === 403) {
      const identity = await this.options.tokens.identity().catch(() => undefined);
      const who = `${identity ?? 'the caller'} (token from ${source})`;
      if (status === 401) {
        return new CloudRunApiError(status, rpc, `Cloud Run rejected the access token of ${who} even after a refresh: ${message}`, 'log in again: gcloud auth login (or gcloud auth application-default login)');
      }
      return new CloudRunApiError(status, rpc, `${who} may not ${method === 'GET' ? 'read' : 'update'} the service: ${rpc ?? 'PERMISSION_DENIED'}: ${message}`, `grant it roles/run.developer (run.services.get, run.services.update) on project ${this.options.project}`);
    }
    return new CloudRunApiError(status, rpc, `${method} ${path}: ${rpc ? `${rpc}: ` : ''}${message} (HTTP ${status})`);
  }
}
