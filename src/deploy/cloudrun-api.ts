// The Cloud Run Admin API as tsko speaks it: one authenticated JSON call at a time over undici,
// the 401-refresh-once rule, and google.rpc errors turned into one line each — with the
// ErrorInfo reason kept (SERVICE_DISABLED, CONSUMER_INVALID), so the deploy and the preflight
// can say "the API is not enabled" instead of echoing a 403. Also the v2 resource shapes tsko reads.
import { request } from 'undici';
import { abortError } from '../abort.js';
import { TskoError } from '../errors.js';
import type { TokenSource } from './gcp-token.js';

export const DEFAULT_RUN_API = 'https://run.googleapis.com';

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

export interface RunContainer extends Record<string, unknown> {
  name?: string;
  image?: string;
  ports?: Array<{ name?: string; containerPort?: number }>;
}

export interface RunService {
  name?: string;
  uri?: string;
  etag?: string;
  generation?: string;
  observedGeneration?: string;
  reconciling?: boolean;
  client?: string;
  template?: { revision?: string; containers?: RunContainer[] } & Record<string, unknown>;
  traffic?: TrafficTarget[];
  trafficStatuses?: Array<TrafficTarget & { uri?: string }>;
  terminalCondition?: RunCondition;
  conditions?: RunCondition[];
  latestReadyRevision?: string;
  latestCreatedRevision?: string;
}

/** google.longrunning.Operation; `error` is a bare google.rpc.Status (code is the RPC number). */
export interface Operation {
  name: string;
  done?: boolean;
  error?: { code?: number; message?: string };
  response?: RunService;
  metadata?: RunService;
}

/** google.iam.v1.Policy as JSON (etag is base64 bytes). */
export interface IamPolicy {
  version?: number;
  etag?: string;
  bindings?: Array<{ role: string; members?: string[]; condition?: unknown }>;
}

/** A non-2xx answer: HTTP status, google.rpc status name, ErrorInfo reason, and the server's own message. */
export class CloudRunApiError extends TskoError {
  readonly status: number;
  readonly rpcStatus: string | undefined;
  readonly reason: string | undefined;
  readonly apiMessage: string;
  constructor(status: number, rpcStatus: string | undefined, message: string, extra: { hint?: string; reason?: string; apiMessage?: string } = {}) {
    super('CLOUDRUN', message, extra.hint === undefined ? {} : { hint: extra.hint });
    this.status = status;
    this.rpcStatus = rpcStatus;
    this.reason = extra.reason;
    this.apiMessage = extra.apiMessage ?? message;
  }
}

export interface ApiContext {
  project: string;
  tokens: TokenSource;
}

const REQUEST_TIMEOUT_MS = 30_000;

export function isCloudRunApiError(err: unknown, status?: number): err is CloudRunApiError {
  return err instanceof CloudRunApiError && (status === undefined || err.status === status);
}

/** One authenticated API call at a time, with the 401-refresh-once rule and google.rpc errors. */
export class CloudRunApi {
  readonly signal: AbortSignal;
  readonly base: string;
  private readonly context: ApiContext;

  constructor(context: ApiContext, base: string, signal: AbortSignal) {
    this.context = context;
    this.base = base;
    this.signal = signal;
  }

  async call<T>(method: 'GET' | 'PATCH' | 'POST', path: string, query: Record<string, string> = {}, body?: unknown): Promise<T> {
    const url = new URL(this.base + path);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    for (let attempt = 1; ; attempt++) {
      const token = await this.context.tokens.get(this.signal);
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
        this.context.tokens.refresh(token.token);
        continue;
      }
      throw await this.error(status, text, method, path, token.source);
    }
  }

  /** Gets (and caches) a token now, so calls made together afterwards share it. */
  async token(): Promise<void> {
    await this.context.tokens.get(this.signal);
  }

  /** Who the token speaks for, and where it came from, for messages (never the token). */
  async identity(): Promise<string> {
    const token = await this.context.tokens.get(this.signal);
    const identity = await this.context.tokens.identity().catch(() => undefined);
    return `${identity ?? 'the caller'} (token from ${token.source})`;
  }

  private async error(status: number, text: string, method: string, path: string, source: string): Promise<CloudRunApiError> {
    let parsed: { error?: { code?: number; message?: string; status?: string; details?: Array<{ '@type'?: string; reason?: string }> } } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // A proxy's or load balancer's page, not google.rpc.Status.
    }
    const rpc = parsed.error?.status;
    const reason = parsed.error?.details?.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.ErrorInfo')?.reason;
    const message = parsed.error?.message || text.trim().split('\n')[0]?.slice(0, 200) || `HTTP ${status}`;
    const project = this.context.project;
    const extra = (hint: string) => ({ hint, apiMessage: message, ...(reason ? { reason } : {}) });
    if (reason === 'SERVICE_DISABLED') {
      return new CloudRunApiError(status, rpc, `Cloud Run Admin API is not enabled in project ${project}`, extra(`gcloud services enable run.googleapis.com --project ${project}`));
    }
    if (reason === 'CONSUMER_INVALID') {
      return new CloudRunApiError(status, rpc, `project ${project} does not exist, or the caller may not use it: ${message}`, extra('check --project (gcloud projects list shows the ones you can use)'));
    }
    if (status === 401 || status === 403) {
      const identity = await this.context.tokens.identity().catch(() => undefined);
      const who = `${identity ?? 'the caller'} (token from ${source})`;
      if (status === 401) {
        return new CloudRunApiError(status, rpc, `Cloud Run rejected the access token of ${who} even after a refresh: ${message}`, extra('log in again: gcloud auth login (or gcloud auth application-default login)'));
      }
      return new CloudRunApiError(status, rpc, `${who} may not ${verbOf(method, path)}: ${rpc ?? 'PERMISSION_DENIED'}: ${message}`, extra(`grant it roles/run.developer (run.services.get, run.services.create, run.services.update) on project ${project}`));
    }
    return new CloudRunApiError(status, rpc, `${method} ${path}: ${rpc ? `${rpc}: ` : ''}${message} (HTTP ${status})`, { apiMessage: message, ...(reason ? { reason } : {}) });
  }
}

/** What the 403'd call was trying to do, in the words of its permission. */
function verbOf(method: string, path: string): string {
  if (path.endsWith(':setIamPolicy')) return "set the service's IAM policy";
  if (path.endsWith(':getIamPolicy')) return "read the service's IAM policy";
  if (path.endsWith('/locations')) return 'list Cloud Run locations';
  if (method === 'POST' && path.endsWith('/services')) return 'create the service';
  return method === 'GET' ? 'read the service' : 'update the service';
}

/** `/v2/projects/P/locations/R/services/S`, each segment escaped. */
export function servicePath(project: string, region: string, service: string): string {
  return `${locationPath(project, region)}/services/${encodeURIComponent(service)}`;
}

export function locationPath(project: string, region: string): string {
  return `/v2/projects/${encodeURIComponent(project)}/locations/${encodeURIComponent(region)}`;
}

/** Last segment of `projects/p/locations/r/services/s/revisions/x`. */
export function shortName(name: string | undefined): string | undefined {
  return name?.split('/').pop();
}
