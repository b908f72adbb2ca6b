// The auth half of ggcr's transport, per registry: the challenge it last sent, the credentials
// looked up for it (once, and forgotten when refused), and Bearer tokens per scope set, fetched
// once for all parallel callers. It says what Authorization to send; which origin may see it is
// the transport's rule.
import type { Dispatcher } from 'undici';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import {
  type Challenge,
  type Credentials,
  TokenCache,
  basicAuthorization,
  parseTokenResponse,
  preferredChallenge,
  realmProblem,
  tokenUrl,
} from './auth.js';
import { lookupCredentials } from './credentials.js';
import type { Dispatch, Endpoint, RegistryRequest } from './dispatch.js';
import { abortable } from '../abort.js';
import { IDENTITY_TOKEN_USER, MAX_ERROR_BODY, type Response, discard, headerAll, httpError, readBody } from './http.js';

export type CredentialsLookup = (registry: string) => Promise<Credentials | undefined>;

export interface AuthSessionOptions {
  /** Default: docker's config.json lookup (in `env` and `homedir`). */
  credentials?: CredentialsLookup | undefined;
  env?: Record<string, string | undefined> | undefined;
  homedir?: string | undefined;
  events?: EventBus | undefined;
  /** Sends token requests. */
  dispatch: Dispatch;
  /** The pool for a token server on another host than the registry. */
  fallback: Dispatcher;
}

const loginHint = (registry: string): string => `run \`tsko login ${registry}\` or \`docker login ${registry}\``;

export class AuthSession {
  readonly #options: AuthSessionOptions;
  readonly #challenges = new Map<string, Challenge>();
  readonly #credentials = new Map<string, Promise<Credentials | undefined>>();
  readonly #tokens = new TokenCache();
  /** Token exchanges in flight, so parallel uploads of one push share one exchange. */
  readonly #tokenFetches = new Map<string, Promise<string>>();

  constructor(options: AuthSessionOptions) {
    this.#options = options;
  }

  /** Remembers what a registry challenged with; later requests answer it before being asked. */
  noteChallenge(registry: string, challenge: Challenge): void {
    this.#challenges.set(registry, challenge);
  }

  /**
   * Takes in a 401: forgets the token it refused, remembers its challenge and returns it. Throws
   * when the 401 carries no challenge tsko can answer.
   */
  async acceptChallenge(request: RegistryRequest, res: Response, refused: string | undefined): Promise<Challenge> {
    const challenge = preferredChallenge(headerAll(res, 'www-authenticate'));
    await discard(res);
    if (challenge === undefined) {
      throw new TskoError('REGISTRY_AUTH', `${request.registry} refused ${request.operation} (401) without a usable WWW-Authenticate challenge`);
    }
    // The token just refused (expired, revoked, too narrow) must not be offered again.
    if (refused?.startsWith('Bearer ') === true) this.#tokens.deleteToken(request.registry, refused.slice('Bearer '.length));
    this.noteChallenge(request.registry, challenge);
    return challenge;
  }

  /**
   * The Authorization value for a request needing `scopes`, from what the registry last challenged
   * with; `fresh` skips the token cache (the registry just refused what it held).
   */
  async authorization(registry: string, scopes: string[], endpoint: Endpoint, fresh: boolean, signal: AbortSignal | undefined): Promise<string | undefined> {
    const challenge = this.#challenges.get(registry);
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const creds = await this.#credentialsFor(registry);
      return creds === undefined ? undefined : basicAuthorization(creds);
    }
    if (challenge.scheme !== 'bearer') return undefined;
    if (!fresh) {
      const cached = this.#tokens.get(registry, scopes);
      if (cached !== undefined) return `Bearer ${cached}`;
    }
    const key = TokenCache.key(registry, scopes);
    let pending = this.#tokenFetches.get(key);
    if (pending === undefined) {
      // Shared by every waiter, so it runs without any one caller's signal; each waiter still
      // stops at once on its own abort.
      pending = this.#fetchToken(registry, challenge, scopes, endpoint).finally(() => this.#tokenFetches.delete(key));
      this.#tokenFetches.set(key, pending);
    }
    return `Bearer ${await abortable(pending, signal)}`;
  }

  /** The error for a request the registry still refuses after its challenge was answered (or could not be). */
  async refusal(request: RegistryRequest, challenge: Challenge): Promise<TskoError> {
    const { registry, operation } = request;
    const creds = await this.#credentialsFor(registry);
    if (challenge.params.error === 'insufficient_scope') {
      const who = creds === undefined ? 'anonymous access' : creds.username;
      return new TskoError('REGISTRY_AUTH', `${registry} denied ${operation} for ${who} (insufficient scope)`, {
        hint: creds === undefined ? loginHint(registry) : `check that ${creds.username} may push to this repository`,
      });
    }
    if (challenge.scheme === 'bearer' && challenge.params.error === 'invalid_token') {
      // The token server said yes and the registry no: the token, not the password, is wrong.
      this.#credentials.delete(registry);
      return new TskoError('REGISTRY_AUTH', `${registry} refused the token its token server issued${creds === undefined ? '' : ` for ${creds.username}`} (invalid_token) during ${operation}`, {
        hint: 'an expired token usually means this machine\'s clock and the token server\'s disagree; otherwise the token server signs for another registry',
      });
    }
    if (creds !== undefined) {
      // Credentials go stale (gcloud tokens last an hour): look them up afresh next time.
      this.#credentials.delete(registry);
      return new TskoError('REGISTRY_AUTH', `authentication failed for ${registry} as ${creds.username}`);
    }
    return new TskoError('REGISTRY_AUTH', `${registry} requires authentication for ${operation}`, { hint: loginHint(registry) });
  }

  #credentialsFor(registry: string): Promise<Credentials | undefined> {
    let pending = this.#credentials.get(registry);
    if (pending === undefined) {
      pending = this.#lookup(registry);
      this.#credentials.set(registry, pending);
      // A failed lookup (helper missing) is reported, not remembered.
      pending.catch(() => this.#credentials.delete(registry));
    }
    return pending;
  }

  #lookup(registry: string): Promise<Credentials | undefined> {
    const { credentials, env, homedir, events } = this.#options;
    if (credentials !== undefined) return credentials(registry);
    return lookupCredentials(registry, {
      ...(env !== undefined ? { env } : {}),
      ...(homedir !== undefined ? { homedir } : {}),
      ...(events ? { onInfo: (message: string) => events.emit({ type: 'log', level: 'info', message }) } : {}),
    });
  }

  async #fetchToken(registry: string, challenge: Challenge, scopes: string[], endpoint: Endpoint): Promise<string> {
    const realm = challenge.params.realm;
    if (realm === undefined || realm === '') {
      throw new TskoError('REGISTRY_AUTH', `${registry} sent a Bearer challenge without a realm`);
    }
    const problem = realmProblem(realm, registry, endpoint.tls);
    if (problem !== undefined) throw new TskoError('REGISTRY_AUTH', `refusing ${registry}'s token server: ${problem}`);
    const creds = await this.#credentialsFor(registry);
    const { res, operation } = await this.#requestToken(registry, realm, challenge.params.service, scopes, creds, endpoint);
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      if (creds !== undefined) {
        this.#credentials.delete(registry);
        throw new TskoError('REGISTRY_AUTH', `authentication failed for ${registry} as ${creds.username}`);
      }
      throw new TskoError('REGISTRY_AUTH', `${registry}'s token server refused anonymous access`, { hint: loginHint(registry) });
    }
    // A 5xx from the token server is retried with the operation that needed the token.
    if (res.status !== 200) throw await httpError(res, operation, registry);
    const parsed = await readTokenResponse(res, operation, registry);
    if (parsed === undefined) throw new TskoError('REGISTRY_AUTH', `${operation}: the answer holds no token`);
    this.#tokens.set(registry, scopes, parsed.token, parsed.expiresIn);
    return parsed.token;
  }

  /**
   * Asks the token server: an identity (refresh) token goes through the OAuth2 grant first, as
   * docker and ggcr do, and a 404 there means the server only has GET; otherwise GET with Basic.
   */
  async #requestToken(registry: string, realm: string, service: string | undefined, scopes: string[], creds: Credentials | undefined, endpoint: Endpoint): Promise<{ res: Response; operation: string }> {
    const dispatch = this.#options.dispatch;
    const tokenEndpoint = (url: URL): Endpoint => ({ origin: url.origin, agent: url.host === registry ? endpoint.agent : this.#options.fallback, tls: url.protocol === 'https:' });
    if (creds?.username === IDENTITY_TOKEN_USER) {
      const url = new URL(realm);
      const operation = `token request to ${url.host} for ${registry}`;
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.password, client_id: 'tsko', scope: scopes.join(' ') });
      if (service !== undefined) form.set('service', service);
      const body = Buffer.from(form.toString());
      const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
      const res = await dispatch(tokenEndpoint(url), url, { registry, method: 'POST', target: url, headers, body: () => body, scopes: [], operation }, undefined);
      if (res.status !== 404) return { res, operation };
      await discard(res);
    }
    const url = tokenUrl(realm, service, scopes, creds?.username);
    const operation = `token request to ${url.host} for ${registry}`;
    const request: RegistryRequest = { registry, method: 'GET', target: url, headers: { accept: 'application/json' }, scopes: [], operation };
    const res = await dispatch(tokenEndpoint(url), url, request, creds === undefined ? undefined : basicAuthorization(creds));
    return { res, operation };
  }
}

/** The token in a token server's JSON; undefined when there is none (or no JSON). */
async function readTokenResponse(res: Response, operation: string, registry: string): Promise<ReturnType<typeof parseTokenResponse>> {
  const bytes = await readBody(res, MAX_ERROR_BODY * 4, operation, registry, undefined);
  try {
    return parseTokenResponse(JSON.parse(bytes.toString('utf8')));
  } catch {
    return undefined;
  }
}
