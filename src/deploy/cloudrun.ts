// The Cloud Run target: each deploy reads the service (Admin API v2, over undici), sets its
// container's image to the pushed digest inside the template it read, PATCHes it back with the
// etag, and waits on the returned long-running Operation until the new revision is ready — or
// reports the revision's terminal condition (a `rollout.failed` event the moment Cloud Run says
// so), while the previous revision keeps serving. A service that does not exist is created, as
// `gcloud run deploy` does (cloudrun-create.ts); the preflight (cloudrun-preflight.ts) says
// which before the first build. With noTraffic and a tag, the new revision gets a tag URL and
// none of the traffic.
import { sleep } from '../abort.js';
import { TskoError, isAbortError } from '../errors.js';
import type { EventBus } from '../events.js';
import { CloudRunApi, DEFAULT_RUN_API, isCloudRunApiError, servicePath, shortName as short, type Operation, type RunCondition, type RunService } from './cloudrun-api.js';
import { allowUnauthenticated, createService, openCommand } from './cloudrun-create.js';
import { cloudRunPreflight } from './cloudrun-preflight.js';
import type { TokenSource } from './gcp-token.js';
import { assertRegistryReachable } from './loopback.js';
import type { DeployRequest, DeployResult, Rollout, Target } from './target.js';

export { DEFAULT_RUN_API } from './cloudrun-api.js';

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
  /** The container port of a service tsko creates (default 8080, as gcloud). */
  port?: number;
  /** Grant roles/run.invoker to allUsers (gcloud's --allow-unauthenticated), once per session. */
  allowUnauthenticated?: boolean;
  tokens: TokenSource;
  events: EventBus;
}

const DEFAULT_TIMEOUT_MS = 300_000;
const DEFAULT_PORT = 8080;
const LATEST = 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST';
const REVISION = 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION';

export interface CloudRunTarget extends Target {
  readonly kind: 'cloudrun';
}

export function createCloudRunTarget(options: CloudRunTargetOptions): CloudRunTarget {
  const apiBase = (options.apiBase || DEFAULT_RUN_API).replace(/\/+$/, '');
  // --allow-unauthenticated is applied once a session, not on every save.
  const state: SessionState = { madePublic: false };
  return {
    kind: 'cloudrun',
    deploy: (request) => deploy(options, apiBase, request, state),
    async preflight(request) {
      const api = new CloudRunApi(options, apiBase, request.signal);
      await cloudRunPreflight(
        api,
        {
          project: options.project,
          region: options.region,
          service: options.service ?? request.service,
          allowUnauthenticated: Boolean(options.allowUnauthenticated),
          noTraffic: Boolean(options.noTraffic),
        },
        request.events,
      );
    },
    close: async () => {},
  };
}

interface SessionState {
  madePublic: boolean;
}

async function deploy(options: CloudRunTargetOptions, apiBase: string, req: DeployRequest, state: SessionState): Promise<Rollout> {
  const service = options.service ?? req.service;
  assertRegistryReachable(req.reference, apiBase, 'Cloud Run', 'set KO_DOCKER_REPO to an Artifact Registry repository (REGION-docker.pkg.dev/PROJECT/REPO) Cloud Run can pull from');
  const api = new CloudRunApi(options, apiBase, req.signal);
  const path = servicePath(options.project, options.region, service);

  let operation: Operation | undefined;
  let revisionName: string | undefined;
  let created = false;
  // Once more when someone else changed the service between our GET and PATCH (etag mismatch),
  // or created it between our GET and POST (409 ALREADY_EXISTS).
  for (let attempt = 1; operation === undefined; attempt++) {
    let current: RunService | undefined;
    try {
      current = await api.call<RunService>('GET', path);
    } catch (err) {
      if (!isCloudRunApiError(err, 404)) throw err;
    }
    if (current === undefined) {
      const first = newService(options, req, service);
      revisionName = first.revision;
      operation = await createService(api, first);
      created = operation !== undefined;
      if (!created && attempt >= 2) throw new TskoError('CLOUDRUN', `Cloud Run service "${service}" was created and removed again while tsko deployed`, { hint: 'deploy again' });
      continue;
    }
    const { body, mask, revision } = updatedService(current, options, req, service);
    revisionName = revision;
    try {
      operation = await api.call<Operation>('PATCH', path, { updateMask: mask }, body);
    } catch (err) {
      const conflict = isCloudRunApiError(err) && (err.status === 409 || err.rpcStatus === 'ABORTED' || err.rpcStatus === 'FAILED_PRECONDITION');
      if (!conflict || attempt >= 2) throw err;
    }
  }
  const where = `project ${options.project}, region ${options.region}`;
  req.events.emit({ type: 'rollout', target: 'cloudrun', message: created ? `service ${service} created in ${where} with ${req.reference}` : `service ${service}: new revision with ${req.reference}` });
  if (options.allowUnauthenticated && !state.madePublic) {
    try {
      const changed = await allowUnauthenticated(api, options.project, options.region, service);
      state.madePublic = true;
      req.events.emit({ type: 'log', level: 'info', message: `${service}: ${changed ? 'granted' : 'already grants'} roles/run.invoker to allUsers (--allow-unauthenticated)` });
    } catch (err) {
      if (isAbortError(err) || !isCloudRunApiError(err)) throw err;
      // Refused, not interrupted: warn once a session, as the next save would be refused the same way.
      state.madePublic = true;
      // As gcloud: the revision rolls on; the service stays as private as it was, and the warning says how to retry.
      req.events.emit({
        type: 'log',
        level: 'warn',
        message: `${service}: setting the IAM policy failed (${err.rpcStatus ?? `HTTP ${err.status}`}: ${err.apiMessage}); the service is not public: ${openCommand(options.project, options.region, service)}`,
      });
    }
  } else if (created && !options.allowUnauthenticated) {
    req.events.emit({
      type: 'log',
      level: 'warn',
      message: `${service} was created private: only callers with roles/run.invoker reach it; to open it, deploy with --allow-unauthenticated, or run ${openCommand(options.project, options.region, service)}`,
    });
  }
  const started = operation;
  return {
    async ready() {
      const since = performance.now();
      const done = await waitOperation(api, started, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, req.events, service, revisionName);
      const result = await outcome(api, path, done, options, service, revisionName, req.events);
      const ms = Math.round(performance.now() - since);
      req.events.emit({ type: 'rollout', target: 'cloudrun', message: `revision ${result.revision} ready in ${ms} ms${result.url ? ` at ${result.url}` : ''}` });
      if (options.tag && result.url) req.events.emit({ type: 'log', level: 'info', message: `${service}: tag ${options.tag} → ${result.url}` });
      return result;
    },
  };
}

/** What a create sends: the image, the port, and for --tag a named first revision with the tag. */
function newService(options: CloudRunTargetOptions, req: DeployRequest, service: string) {
  if (options.noTraffic) {
    throw new TskoError('CLOUDRUN', `Cloud Run service "${service}" does not exist, and --no-traffic cannot create it (its first revision takes all traffic)`, { hint: 'deploy once without --no-traffic' });
  }
  const revision = options.tag ? revisionNameFor(service) : undefined;
  return {
    project: options.project,
    region: options.region,
    service,
    image: req.reference,
    port: options.port ?? DEFAULT_PORT,
    ...(revision ? { revision } : {}),
    ...(options.tag ? { tag: options.tag } : {}),
  };
}

function revisionNameFor(service: string): string {
  return `${service}-tsko-${Date.now().toString(36)}`.slice(0, 63);
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
    revision = revisionNameFor(service);
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

async function waitOperation(api: CloudRunApi, first: Operation, timeoutMs: number, events: EventBus, service: string, revisionName: string | undefined): Promise<Operation> {
  let operation = first;
  const started = performance.now();
  let delay = 200;
  let last = '';
  while (!operation.done) {
    // Cloud Run may report the revision failed before the Operation ends: say so at once.
    if (failedCondition(operation.metadata)) throw rolloutFailed(operation.metadata, operation, service, revisionName, events);
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

/** The condition that says the rollout cannot succeed: the terminal one first, else any failed one. */
function failedCondition(service: RunService | undefined): RunCondition | undefined {
  if (service?.terminalCondition?.state === 'CONDITION_FAILED') return service.terminalCondition;
  return service?.conditions?.find((c) => c.state === 'CONDITION_FAILED');
}

/** google.rpc.Code numbers an Operation's error carries, by name, for a reason when no condition gives one. */
const RPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** Emits `rollout.failed` with Cloud Run's own reason and message, and returns the one-line error. */
function rolloutFailed(after: RunService | undefined, operation: Operation, service: string, revisionName: string | undefined, events: EventBus): TskoError {
  const created = short(after?.latestCreatedRevision) ?? revisionName;
  const ready = short(after?.latestReadyRevision);
  const condition = failedCondition(after);
  const why = condition?.message ?? operation.error?.message ?? after?.terminalCondition?.message ?? 'it did not get ready';
  const reason = condition?.reason ?? condition?.revisionReason ?? (operation.error?.code !== undefined ? RPC_CODES[operation.error.code] : undefined) ?? 'REVISION_FAILED';
  events.emit({ type: 'rollout.failed', target: 'cloudrun', reason, message: why });
  const keeps = ready && ready !== created ? `${ready} keeps serving` : ready ? 'the previous revision keeps serving' : `no revision of ${service} serves yet`;
  return new TskoError('CLOUDRUN', `revision ${created ?? '(new)'} of Cloud Run service "${service}" failed: ${why}`, { hint: `${keeps}; the next save rolls a new revision` });
}

async function outcome(api: CloudRunApi, path: string, operation: Operation, options: CloudRunTargetOptions, service: string, revisionName: string | undefined, events: EventBus): Promise<DeployResult> {
  // The Operation's error is terse; the service's terminal condition says what the revision did.
  const after = operation.error ? await api.call<RunService>('GET', path).catch((err: unknown) => {
    if (isAbortError(err)) throw err;
    return undefined;
  }) : operation.response;
  const created = short(after?.latestCreatedRevision) ?? revisionName;
  const ready = short(after?.latestReadyRevision);
  const terminal = after?.terminalCondition;
  const failed = operation.error !== undefined || (terminal?.state !== undefined && terminal.state !== 'CONDITION_SUCCEEDED') || (created !== undefined && ready !== created);
  if (failed) throw rolloutFailed(after, operation, service, revisionName, events);
  const revision = ready ?? created ?? '(unknown)';
  if (options.tag) {
    const tagged = after?.trafficStatuses?.find((t) => t.tag === options.tag);
    return { revision, ...(tagged?.uri ? { url: tagged.uri } : {}) };
  }
  return { revision, ...(after?.uri ? { url: after.uri } : {}) };
}
