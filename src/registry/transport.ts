// The transport the registry operations run on, wired like ggcr's: find the endpoint, send
// Authorization to the registry's own origin only, answer one 401 challenge, and retry whole
// operations (never single requests: a streamed body cannot be replayed) with backoff.
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { mergeScopes, parseWwwAuthenticate } from './auth.js';
import { AuthSession, type CredentialsLookup } from './auth-session.js';
import { type Dispatch, type Endpoint, type RegistryRequest, createDispatch } from './dispatch.js';
import { type AgentOptions, Agents, Endpoints } from './endpoint.js';
import { RegistryError, type Response, discard, headerAll } from './http.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, type RetryVerdict, withRetry } from './retry.js';

export interface TransportOptions extends AgentOptions {
  /** Plain http (or https without verification) for these registries, or for all when true. Loopback is always allowed plain http. */
  insecureRegistries?: boolean | string[];
  /** Default: docker's config.json lookup (in `env` and `homedir`). */
  credentials?: CredentialsLookup;
  /** The environment credential lookups and helpers see (DOCKER_CONFIG, PATH, gcloud's); default: the process's. */
  env?: Record<string, string | undefined>;
  homedir?: string;
  events?: EventBus;
  userAgent?: string;
  /** Retry bounds; defaults in DEFAULT_RETRY_POLICY (8 tries, backoff 200 ms doubling to 2 s). */
  retry?: Partial<RetryPolicy>;
}

/** What the operations need: one request with auth handled, and a retry loop around a whole operation. */
export interface RegistryTransport {
  send(request: RegistryRequest): Promise<Response>;
  retrying<T>(operation: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T>;
}

export interface TransportParts {
  endpoints: Endpoints;
  session: AuthSession;
  dispatch: Dispatch;
  policy: RetryPolicy;
  events?: EventBus | undefined;
  /** Releases the pools. */
  close: () => Promise<void>;
  /** Makes the connection pools now (see warm()). */
  warm?: () => void;
}

/** Only a retryable RegistryError is worth another try; the verdict carries its cause and Retry-After. */
export function retryVerdict(err: unknown): RetryVerdict | undefined {
  if (!(err instanceof RegistryError) || !err.retryable) return undefined;
  return err.retryAfterMs !== undefined ? { cause: err.causeCode, retryAfterMs: err.retryAfterMs } : { cause: err.causeCode };
}

/**
 * A retryable error that got out has used up the budget: final from here on (an enclosing
 * operation must not spend a second budget on it), and it says how hard we tried.
 */
export function exhausted(err: unknown, tries: number): unknown {
  if (!(err instanceof RegistryError) || !err.retryable) return err;
  return new RegistryError(err.code as 'REGISTRY_UNREACHABLE' | 'REGISTRY_HTTP', `${err.message} (gave up after ${tries} ${tries === 1 ? 'try' : 'tries'})`, {
    retryable: false,
    causeCode: err.causeCode,
    cause: err.cause ?? err,
    ...(err.status !== undefined ? { status: err.status } : {}),
    ...(err.hint !== undefined ? { hint: err.hint } : {}),
  });
}

export class Transport implements RegistryTransport {
  readonly #parts: TransportParts;
  #closed = false;

  constructor(parts: TransportParts) {
    this.#parts = parts;
  }

  /** One request, answering a 401 challenge from the registry once. */
  async send(request: RegistryRequest): Promise<Response> {
    if (this.#closed) throw new TskoError('INTERNAL', 'registry client used after close()');
    const { endpoints, session, dispatch } = this.#parts;
    const endpoint = await endpoints.resolve(request.registry, request.operation, request.signal);
    const url = typeof request.target === 'string' ? new URL(request.target, endpoint.origin) : request.target;
    // Authorization only for the registry's own origin, never a Location or redirect elsewhere.
    if (url.origin !== endpoint.origin) return dispatch(endpoint, url, request, undefined);
    const authorization = await session.authorization(request.registry, request.scopes, endpoint, false, request.signal);
    const res = await dispatch(endpoint, url, request, authorization);
    if (res.status !== 401) return res;
    return this.#answerChallenge(endpoint, url, request, res, authorization);
  }

  async #answerChallenge(endpoint: Endpoint, url: URL, request: RegistryRequest, res: Response, refused: string | undefined): Promise<Response> {
    const { session, dispatch } = this.#parts;
    const challenge = await session.acceptChallenge(request, res, refused);
    const scopes = mergeScopes(request.scopes, challenge.params.scope);
    const authorization = await session.authorization(request.registry, scopes, endpoint, true, request.signal);
    if (authorization === undefined && refused === undefined) throw await session.refusal(request, challenge);
    const again = await dispatch(endpoint, url, request, authorization);
    if (again.status !== 401) return again;
    const next = headerAll(again, 'www-authenticate').flatMap(parseWwwAuthenticate)[0];
    await discard(again);
    throw await session.refusal(request, next ?? challenge);
  }

  /** Runs a whole operation under the retry policy, reporting each retry as an event. */
  async retrying<T>(operation: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const { policy, events } = this.#parts;
    let tries = 0;
    try {
      return await withRetry(
        () => {
          tries++;
          return fn();
        },
        {
          policy,
          classify: retryVerdict,
          onRetry: (notice) => events?.emit({ type: 'retry', operation, attempt: notice.attempt, cause: notice.cause, delayMs: notice.delayMs }),
          ...(signal ? { signal } : {}),
        },
      );
    } catch (err) {
      throw exhausted(err, tries);
    }
  }

  /** Loads what requests need (undici) now, while nothing waits on it: a command calls it once go runs. */
  warm(): void {
    this.#parts.warm?.();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#parts.close();
  }
}

/** The transport with its real parts: undici pools, probing, docker's credentials, the retry policy. */
export function createTransport(options: TransportOptions = {}): Transport {
  const agents = new Agents(options);
  // The pools are made on first use (endpoint.ts): `fallback` is read per request.
  const dispatch = createDispatch({
    get fallback() {
      return agents.verified;
    },
    userAgent: options.userAgent,
    events: options.events,
  });
  const { credentials, env, homedir, events } = options;
  const session = new AuthSession({
    credentials,
    env,
    homedir,
    events,
    dispatch,
    get fallback() {
      return agents.verified;
    },
  });
  const endpoints = new Endpoints({
    pools: agents,
    insecureRegistries: options.insecureRegistries,
    dispatch,
    onChallenge: (registry, challenge) => session.noteChallenge(registry, challenge),
  });
  return new Transport({
    endpoints,
    session,
    dispatch,
    policy: { ...DEFAULT_RETRY_POLICY, ...options.retry },
    events: options.events,
    close: () => agents.close(),
    warm: () => agents.warm(),
  });
}
