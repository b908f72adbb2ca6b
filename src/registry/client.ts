// The distribution-spec client tsko pushes and pulls with: manifests, blobs (HEAD skip, mount,
// monolithic and chunked upload), tags. One undici Agent keeps a keep-alive pool per registry.
// Auth follows ggcr's transport: try anonymously, answer a 401 challenge (Basic or Bearer), cache
// the token per scope set, and send Authorization only to the registry's own origin.
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { getCACertificates, rootCertificates } from 'node:tls';
import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { MANIFEST_ACCEPT } from '../image/media-types.js';
import { redact } from '../redact.js';
import {
  type Action,
  type Challenge,
  type Credentials,
  TokenCache,
  basicAuthorization,
  mergeScopes,
  parseTokenResponse,
  parseWwwAuthenticate,
  realmProblem,
  repositoryScope,
  tokenUrl,
} from './auth.js';
import { lookupCredentials } from './credentials.js';
import { type Reference, type Repository, formatReference, formatRepository, isLoopbackRegistry } from './reference.js';
import {
  RETRYABLE_STATUS,
  TRANSIENT_NETWORK,
  TLS_VERIFY_CODES,
  REDIRECT_STATUS,
  MAX_ERROR_BODY,
  IDENTITY_TOKEN_USER,
  MAX_MANIFEST_BYTES,
  RegistryError,
  header,
  headerAll,
  sha256,
  errnoCode,
  isAbort,
  readLimited,
  discard,
  registryErrorSummary,
  shortQuery,
  abortable,
  appendQuery,
  embeddedMediaType,
  type Response,
} from './http.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, type RetryVerdict, parseRetryAfter, withRetry } from './retry.js';

export interface ManifestInfo {
  digest: string;
  mediaType: string;
  size: number;
}

export interface FetchedManifest extends ManifestInfo {
  bytes: Buffer;
}

export interface RegistryClientOptions {
  /** Plain http (or https without verification) for these registries, or for all when true. Loopback is always allowed plain http. */
  insecureRegistries?: boolean | string[];
  /** Default: docker's config.json lookup (in `env` and `homedir`). */
  credentials?: (registry: string) => Promise<{ username: string; password: string } | undefined>;
  /** The environment credential lookups and helpers see (DOCKER_CONFIG, PATH, gcloud's); default: the process's. */
  env?: Record<string, string | undefined>;
  homedir?: string;
  events?: EventBus;
  userAgent?: string;
  /** Extra PEM CA certificates trusted besides Node's defaults (which include NODE_EXTRA_CA_CERTS). */
  caCertificates?: string[];
  /** Retry bounds; defaults in DEFAULT_RETRY_POLICY (8 tries, backoff 200 ms doubling to 2 s). */
  retry?: Partial<RetryPolicy>;
  connectTimeoutMs?: number;
  /** Time to wait for response headers and between body chunks. */
  responseTimeoutMs?: number;
}

type BodyFactory = () => Buffer | Readable;

interface Endpoint {
  origin: string;
  agent: Agent;
  tls: boolean;
}

interface AuthState {
  challenge?: Challenge;
}

interface RequestSpec {
  registry: string;
  method: string;
  /** Path (resolved against the registry origin) or absolute URL (a Location). */
  target: string | URL;
  headers?: Record<string, string>;
  body?: BodyFactory;
  /** Token scopes this request needs. */
  scopes: string[];
  /** Human name of the operation, for errors and events. */
  operation: string;
  signal?: AbortSignal | undefined;
}

export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #policy: RetryPolicy;
  readonly #agent: Agent;
  #insecureAgent: Agent | undefined;
  readonly #endpoints = new Map<string, Promise<Endpoint>>();
  readonly #auth = new Map<string, AuthState>();
  readonly #credentials = new Map<string, Promise<Credentials | undefined>>();
  readonly #tokens = new TokenCache();
  /** Token exchanges in flight, so parallel uploads of one push share one exchange. */
  readonly #tokenFetches = new Map<string, Promise<string>>();
  /** Registry `Warning: 299` texts already shown: each is reported once, never acted on. */
  readonly #warned = new Set<string>();
  #closed = false;

  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    const extraCa = options.caCertificates ?? [];
    const connect: Record<string, unknown> = { timeout: options.connectTimeoutMs ?? 10_000 };
    if (extraCa.length > 0) {
      // `ca` replaces the default store, so start from it (which holds NODE_EXTRA_CA_CERTS too).
      const defaults = typeof getCACertificates === 'function' ? getCACertificates('default') : [...rootCertificates];
      connect.ca = [...defaults, ...extraCa];
    }
    this.#agent = new Agent({
      connect,
      headersTimeout: options.responseTimeoutMs ?? 60_000,
      bodyTimeout: options.responseTimeoutMs ?? 60_000,
      keepAliveTimeout: 30_000,
    });
  }

  // ---------------------------------------------------------------- manifests

  async headManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestInfo | undefined> {
    const operation = `HEAD manifest ${formatReference(ref)}`;
    const info = await this.#retrying(operation, signal, async () => {
      const res = await this.#send({
        registry: ref.registry,
        method: 'HEAD',
        target: this.#manifestPath(ref),
        headers: { accept: MANIFEST_ACCEPT.join(', ') },
        scopes: [repositoryScope(ref.repository, ['pull'])],
        operation,
        signal,
      });
      // ggcr treats 403 like 404 here: some registries (JFrog) answer 403 for a missing manifest.
      if (res.status === 404 || res.status === 403) {
        await discard(res);
        return null;
      }
      if (res.status !== 200) throw await this.#httpError(res, operation, ref.registry);
      await discard(res);
      const digest = header(res, 'docker-content-digest') ?? ref.digest;
      const mediaType = header(res, 'content-type');
      const size = Number(header(res, 'content-length'));
      if (digest === undefined || mediaType === undefined || !Number.isFinite(size)) return undefined;
      return { digest, mediaType: mediaType.split(';')[0]!.trim(), size };
    });
    if (info === null) return undefined;
    if (info !== undefined) {
      if (ref.digest !== undefined && info.digest !== ref.digest) {
        throw new TskoError('REGISTRY_DIGEST', `${ref.registry} answered ${operation} with digest ${info.digest}`);
      }
      return info;
    }
    // No Docker-Content-Digest (it is optional): the bytes say it.
    const fetched = await this.getManifest(ref, signal);
    return { digest: fetched.digest, mediaType: fetched.mediaType, size: fetched.size };
  }

  async getManifest(ref: Reference, signal?: AbortSignal): Promise<FetchedManifest> {
    const operation = `GET manifest ${formatReference(ref)}`;
    return this.#retrying(operation, signal, async () => {
      const res = await this.#send({
        registry: ref.registry,
        method: 'GET',
        target: this.#manifestPath(ref),
        headers: { accept: MANIFEST_ACCEPT.join(', ') },
        scopes: [repositoryScope(ref.repository, ['pull'])],
        operation,
        signal,
      });
      if (res.status !== 200) throw await this.#httpError(res, operation, ref.registry);
      const bytes = await this.#readBody(res, MAX_MANIFEST_BYTES, operation, ref.registry, signal);
      const digest = sha256(bytes);
      if (ref.digest !== undefined && digest !== ref.digest) {
        throw new TskoError('REGISTRY_DIGEST', `${operation}: content has digest ${digest}, not the one asked for`);
      }
      const claimed = header(res, 'docker-content-digest');
      if (claimed !== undefined && claimed.startsWith('sha256:') && claimed !== digest) {
        throw new TskoError('REGISTRY_DIGEST', `${operation}: ${ref.registry} says ${claimed} but the content has digest ${digest}`);
      }
      let mediaType = header(res, 'content-type')?.split(';')[0]?.trim() ?? '';
      if (mediaType === '' || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
        mediaType = embeddedMediaType(bytes) ?? mediaType;
      }
      return { digest, mediaType, size: bytes.length, bytes };
    });
  }

  async putManifest(ref: Reference, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
    const digest = sha256(bytes);
    if (ref.digest !== undefined && ref.digest !== digest) {
      throw new TskoError('REGISTRY_DIGEST', `manifest for ${formatReference(ref)} has digest ${digest}, not the one in the reference`);
    }
    const operation = `PUT manifest ${formatReference(ref)}`;
    const reference = ref.tag ?? digest;
    await this.#retrying(operation, signal, async () => {
      const res = await this.#send({
        registry: ref.registry,
        method: 'PUT',
        target: `/v2/${ref.repository}/manifests/${reference}`,
        headers: { 'content-type': mediaType },
        body: () => bytes,
        scopes: [repositoryScope(ref.repository, ['pull', 'push'])],
        operation,
        signal,
      });
      if (res.status !== 201 && res.status !== 200) throw await this.#httpError(res, operation, ref.registry);
      await discard(res);
      const claimed = header(res, 'docker-content-digest');
      if (claimed !== undefined && claimed !== '' && claimed !== digest) {
        throw new TskoError('REGISTRY_DIGEST', `${ref.registry} stored manifest ${formatReference(ref)} as ${claimed}, but its bytes have digest ${digest}`, {
          hint: 'the registry changed the manifest; refusing to trust it',
        });
      }
    });
    return digest;
  }

  async listTags(repo: Repository, signal?: AbortSignal): Promise<string[]> {
    const operation = `GET tags ${formatRepository(repo)}`;
    const tags: string[] = [];
    let target: string | URL = `/v2/${repo.repository}/tags/list`;
    for (let page = 0; page < 1000; page++) {
      const current: string | URL = target;
      const { list, next } = await this.#retrying(operation, signal, async () => {
        const res = await this.#send({ registry: repo.registry, method: 'GET', target: current, scopes: [repositoryScope(repo.repository, ['pull'])], operation, signal });
        if (res.status === 404) {
          await discard(res);
          return { list: [] as string[], next: undefined };
        }
        if (res.status !== 200) throw await this.#httpError(res, operation, repo.registry);
        const json = JSON.parse((await this.#readBody(res, MAX_MANIFEST_BYTES, operation, repo.registry, signal)).toString('utf8')) as { tags?: unknown };
        const list = Array.isArray(json.tags) ? json.tags.filter((t): t is string => typeof t === 'string') : [];
        const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
        return { list, next: link?.[1] !== undefined ? new URL(link[1], res.url) : undefined };
      });
      tags.push(...list);
      if (next === undefined) break;
      target = next;
    }
    return tags;
  }

  /**
   * `GET /v2/` with the client's credentials, as `docker login` checks them: resolves when the
   * registry accepts them (or asks for none), rejects with "authentication failed for R as U".
   */
  async checkAuth(registry: string, signal?: AbortSignal): Promise<void> {
    const operation = `GET /v2/ of ${registry}`;
    await this.#retrying(operation, signal, async () => {
      const res = await this.#send({ registry, method: 'GET', target: '/v2/', scopes: [], operation, signal });
      if (res.status !== 200) throw await this.#httpError(res, operation, registry);
      await discard(res);
    });
  }

  // ---------------------------------------------------------------- blobs

  async headBlob(repo: Repository, digest: string, signal?: AbortSignal): Promise<boolean> {
    const operation = `HEAD blob ${formatRepository(repo)}@${digest}`;
    return this.#retrying(operation, signal, async () => {
      const res = await this.#send({
        registry: repo.registry,
        method: 'HEAD',
        target: `/v2/${repo.repository}/blobs/${digest}`,
        scopes: [repositoryScope(repo.repository, ['pull'])],
        operation,
        signal,
      });
      await discard(res);
      if (res.status === 200) {
        // A registry that answers for another blob than the one asked for is not trusted to hold it.
        const claimed = header(res, 'docker-content-digest');
        if (claimed !== undefined && claimed !== '' && claimed !== digest) {
          throw new TskoError('REGISTRY_DIGEST', `${repo.registry} answered ${operation} with digest ${claimed}`, { hint: 'the registry is not serving what it was asked for; refusing to trust it' });
        }
        return true;
      }
      if (res.status === 404) return false;
      // A redirect means the blob exists in storage elsewhere.
      if (REDIRECT_STATUS.has(res.status)) return true;
      throw await this.#httpError(res, operation, repo.registry);
    });
  }

  async getBlob(repo: Repository, digest: string, signal?: AbortSignal): Promise<Buffer> {
    const operation = `GET blob ${formatRepository(repo)}@${digest}`;
    return this.#retrying(operation, signal, async () => {
      const res = await this.#getFollowingRedirects(repo, `/v2/${repo.repository}/blobs/${digest}`, operation, signal);
      const bytes = await this.#readBody(res, Number.MAX_SAFE_INTEGER, operation, repo.registry, signal);
      const actual = sha256(bytes);
      if (actual !== digest) throw new TskoError('REGISTRY_DIGEST', `${operation}: content has digest ${actual}`);
      return bytes;
    });
  }

  async openBlobStream(repo: Repository, digest: string, signal?: AbortSignal): Promise<{ size: number; stream: Readable }> {
    const operation = `GET blob ${formatRepository(repo)}@${digest}`;
    const res = await this.#retrying(operation, signal, () => this.#getFollowingRedirects(repo, `/v2/${repo.repository}/blobs/${digest}`, operation, signal));
    const size = Number(header(res, 'content-length') ?? -1);
    const hash = createHash('sha256');
    // The digest can only be checked at the end: the stream then fails instead of ending.
    const verify = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
      flush(done) {
        const actual = `sha256:${hash.digest('hex')}`;
        done(actual === digest ? null : new TskoError('REGISTRY_DIGEST', `${operation}: content has digest ${actual}`));
      },
    });
    res.body.on('error', (err) => verify.destroy(this.#networkError(err, operation, repo.registry, signal)));
    return { size, stream: res.body.pipe(verify) };
  }

  /** Cross-repository mount. True when the registry mounted it (201); false when it wants an upload instead. */
  async mountBlob(target: Repository, digest: string, from: Repository, signal?: AbortSignal): Promise<boolean> {
    if (from.registry !== target.registry) return false;
    const operation = `mount blob ${digest} from ${from.repository} into ${formatRepository(target)}`;
    const query = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from.repository)}`;
    const scopes = [repositoryScope(target.repository, ['pull', 'push']), repositoryScope(from.repository, ['pull'])];
    return this.#retrying(operation, signal, async () => {
      const res = await this.#send({ registry: target.registry, method: 'POST', target: `/v2/${target.repository}/blobs/uploads/${query}`, headers: { 'content-length': '0' }, scopes, operation, signal });
      if (res.status === 201) {
        await discard(res);
        return true;
      }
      if (res.status === 202) {
        await discard(res);
        await this.#cancelUpload(target, res, scopes, signal);
        return false;
      }
      // Registries that cannot mount (unsupported, source unknown or not readable) get a plain upload.
      if (res.status === 400 || res.status === 404 || res.status === 405) {
        await discard(res);
        return false;
      }
      throw await this.#httpError(res, operation, target.registry);
    });
  }

  /**
   * Uploads a blob: POST for a session, then one monolithic PUT with the body and `?digest=`.
   * Retried as a whole, reopening the body through the factory.
   */
  async uploadBlob(target: Repository, digest: string, size: number, body: () => Buffer | Readable, signal?: AbortSignal): Promise<void> {
    const operation = `upload blob ${formatRepository(target)}@${digest}`;
    const scopes = [repositoryScope(target.repository, ['pull', 'push'])];
    await this.#retrying(operation, signal, async () => {
      // The session is retried on its own: a dropped POST should cost a POST, not a turn of the
      // whole upload's budget.
      const location = await this.#retrying(operation, signal, () => this.#startUpload(target, scopes, operation, signal));
      const res = await this.#send({
        registry: target.registry,
        method: 'PUT',
        target: appendQuery(location, 'digest', digest),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body,
        scopes,
        operation,
        signal,
      });
      await this.#finishUpload(res, digest, operation, target.registry);
    });
  }

  async uploadBlobChunked(target: Repository, digest: string, data: Buffer, chunkSize: number, signal?: AbortSignal): Promise<void> {
    if (!(chunkSize > 0)) throw new TskoError('INTERNAL', `chunk size must be positive, got ${chunkSize}`);
    const operation = `chunked upload blob ${formatRepository(target)}@${digest}`;
    const scopes = [repositoryScope(target.repository, ['pull', 'push'])];
    await this.#retrying(operation, signal, async () => {
      let location = await this.#retrying(operation, signal, () => this.#startUpload(target, scopes, operation, signal));
      for (let start = 0; start < data.length; start += chunkSize) {
        const chunk = data.subarray(start, Math.min(data.length, start + chunkSize));
        const res = await this.#send({
          registry: target.registry,
          method: 'PATCH',
          target: location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(chunk.length),
            'content-range': `${start}-${start + chunk.length - 1}`,
          },
          body: () => chunk,
          scopes,
          operation,
          signal,
        });
        if (res.status !== 202) throw await this.#httpError(res, operation, target.registry);
        await discard(res);
        location = this.#location(res, operation);
      }
      const res = await this.#send({
        registry: target.registry,
        method: 'PUT',
        target: appendQuery(location, 'digest', digest),
        headers: { 'content-length': '0' },
        scopes,
        operation,
        signal,
      });
      await this.#finishUpload(res, digest, operation, target.registry);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#agent.close(), this.#insecureAgent?.close()]);
  }

  // ---------------------------------------------------------------- upload helpers

  async #startUpload(target: Repository, scopes: string[], operation: string, signal: AbortSignal | undefined): Promise<URL> {
    const res = await this.#send({
      registry: target.registry,
      method: 'POST',
      target: `/v2/${target.repository}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      scopes,
      operation,
      signal,
    });
    if (res.status !== 202) throw await this.#httpError(res, operation, target.registry);
    await discard(res);
    return this.#location(res, operation);
  }

  async #finishUpload(res: Response, digest: string, operation: string, registry: string): Promise<void> {
    if (res.status !== 201 && res.status !== 204) throw await this.#httpError(res, operation, registry);
    await discard(res);
    const claimed = header(res, 'docker-content-digest');
    if (claimed !== undefined && claimed !== '' && claimed !== digest) {
      throw new TskoError('REGISTRY_DIGEST', `${registry} stored the blob as ${claimed}, expected ${digest}`);
    }
  }

  async #cancelUpload(target: Repository, res: Response, scopes: string[], signal: AbortSignal | undefined): Promise<void> {
    const loc = header(res, 'location');
    if (loc === undefined) return;
    try {
      const del = await this.#send({ registry: target.registry, method: 'DELETE', target: new URL(loc, res.url), scopes, operation: 'cancel upload', signal });
      await discard(del);
    } catch (err) {
      if (signal?.aborted) throw err;
      // An abandoned session only costs the registry a little disk until it is garbage collected.
    }
  }

  #location(res: Response, operation: string): URL {
    const loc = header(res, 'location');
    if (loc === undefined || loc === '') {
      throw new TskoError('REGISTRY_HTTP', `${operation}: registry answered ${res.status} without a Location header`);
    }
    return new URL(loc, res.url);
  }

  // ---------------------------------------------------------------- transport

  #manifestPath(ref: Reference): string {
    const reference = ref.digest ?? ref.tag;
    if (reference === undefined) throw new TskoError('REFERENCE', `${formatReference(ref)} has neither tag nor digest`);
    return `/v2/${ref.repository}/manifests/${reference}`;
  }

  async #retrying<T>(operation: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    let tries = 0;
    try {
      return await withRetry(
        () => {
          tries++;
          return fn();
        },
        {
          policy: this.#policy,
          classify: (err): RetryVerdict | undefined => {
            if (!(err instanceof RegistryError) || !err.retryable) return undefined;
            return err.retryAfterMs !== undefined ? { cause: err.causeCode, retryAfterMs: err.retryAfterMs } : { cause: err.causeCode };
          },
          onRetry: (notice) => this.#options.events?.emit({ type: 'retry', operation, attempt: notice.attempt, cause: notice.cause, delayMs: notice.delayMs }),
          ...(signal ? { signal } : {}),
        },
      );
    } catch (err) {
      // A retryable error that got out has used up the budget: final from here on (an enclosing
      // operation must not spend a second budget on it), and it says how hard we tried.
      if (!(err instanceof RegistryError) || !err.retryable) throw err;
      throw new RegistryError(err.code as 'REGISTRY_UNREACHABLE' | 'REGISTRY_HTTP', `${err.message} (gave up after ${tries} ${tries === 1 ? 'try' : 'tries'})`, {
        retryable: false,
        causeCode: err.causeCode,
        cause: err.cause ?? err,
        ...(err.status !== undefined ? { status: err.status } : {}),
        ...(err.hint !== undefined ? { hint: err.hint } : {}),
      });
    }
  }

  async #getFollowingRedirects(repo: Repository, path: string, operation: string, signal: AbortSignal | undefined): Promise<Response> {
    let target: string | URL = path;
    for (let hop = 0; hop <= 5; hop++) {
      const res = await this.#send({ registry: repo.registry, method: 'GET', target, scopes: [repositoryScope(repo.repository, ['pull'])], operation, signal });
      if (res.status === 200) return res;
      if (REDIRECT_STATUS.has(res.status) && header(res, 'location') !== undefined) {
        await discard(res);
        target = new URL(header(res, 'location')!, res.url);
        continue;
      }
      throw await this.#httpError(res, operation, repo.registry);
    }
    throw new TskoError('REGISTRY_HTTP', `${operation}: too many redirects`);
  }

  /** One request, answering a 401 challenge from the registry once. */
  async #send(spec: RequestSpec): Promise<Response> {
    if (this.#closed) throw new TskoError('INTERNAL', 'registry client used after close()');
    const endpoint = await this.#endpoint(spec.registry, spec.operation, spec.signal);
    const url = typeof spec.target === 'string' ? new URL(spec.target, endpoint.origin) : spec.target;
    // Authorization only for the registry's own origin, never a Location or redirect elsewhere.
    const sameOrigin = url.origin === endpoint.origin;
    let authorization = sameOrigin ? await this.#authorization(spec.registry, spec.scopes, endpoint, false, spec.signal) : undefined;
    let res = await this.#dispatch(endpoint, url, spec, authorization);
    if (res.status !== 401 || !sameOrigin) return res;

    const challenges = headerAll(res, 'www-authenticate').flatMap(parseWwwAuthenticate);
    await discard(res);
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (challenge === undefined) {
      throw new TskoError('REGISTRY_AUTH', `${spec.registry} refused ${spec.operation} (401) without a usable WWW-Authenticate challenge`);
    }
    const state = this.#authState(spec.registry);
    const hadAuthorization = authorization !== undefined;
    // The token just refused (expired, revoked, too narrow) must not be offered again.
    if (authorization?.startsWith('Bearer ') === true) this.#tokens.deleteToken(spec.registry, authorization.slice('Bearer '.length));
    state.challenge = challenge;
    const scopes = mergeScopes(spec.scopes, challenge.params.scope);
    authorization = await this.#authorization(spec.registry, scopes, endpoint, true, spec.signal);
    if (authorization === undefined && !hadAuthorization) throw await this.#authFailure(spec, challenge);
    res = await this.#dispatch(endpoint, url, spec, authorization);
    if (res.status === 401) {
      const again = headerAll(res, 'www-authenticate').flatMap(parseWwwAuthenticate)[0];
      await discard(res);
      throw await this.#authFailure(spec, again ?? challenge);
    }
    return res;
  }

  async #authFailure(spec: RequestSpec, challenge: Challenge): Promise<TskoError> {
    const creds = await this.#credentialsFor(spec.registry);
    if (challenge.params.error === 'insufficient_scope') {
      const who = creds === undefined ? 'anonymous access' : creds.username;
      return new TskoError('REGISTRY_AUTH', `${spec.registry} denied ${spec.operation} for ${who} (insufficient scope)`, {
        hint: creds === undefined ? `run \`tsko login ${spec.registry}\` or \`docker login ${spec.registry}\`` : `check that ${creds.username} may push to this repository`,
      });
    }
    if (challenge.scheme === 'bearer' && challenge.params.error === 'invalid_token') {
      // The token server said yes and the registry no: the token, not the password, is wrong.
      this.#credentials.delete(spec.registry);
      return new TskoError('REGISTRY_AUTH', `${spec.registry} refused the token its token server issued${creds === undefined ? '' : ` for ${creds.username}`} (invalid_token) during ${spec.operation}`, {
        hint: 'an expired token usually means this machine\'s clock and the token server\'s disagree; otherwise the token server signs for another registry',
      });
    }
    if (creds !== undefined) {
      // Credentials go stale (gcloud tokens last an hour): look them up afresh next time.
      this.#credentials.delete(spec.registry);
      return new TskoError('REGISTRY_AUTH', `authentication failed for ${spec.registry} as ${creds.username}`);
    }
    return new TskoError('REGISTRY_AUTH', `${spec.registry} requires authentication for ${spec.operation}`, {
      hint: `run \`tsko login ${spec.registry}\` or \`docker login ${spec.registry}\``,
    });
  }

  #authState(registry: string): AuthState {
    let state = this.#auth.get(registry);
    if (state === undefined) {
      state = {};
      this.#auth.set(registry, state);
    }
    return state;
  }

  #credentialsFor(registry: string): Promise<Credentials | undefined> {
    let pending = this.#credentials.get(registry);
    if (pending === undefined) {
      const events = this.#options.events;
      const lookup =
        this.#options.credentials ??
        ((r: string) =>
          lookupCredentials(r, {
            ...(this.#options.env !== undefined ? { env: this.#options.env } : {}),
            ...(this.#options.homedir !== undefined ? { homedir: this.#options.homedir } : {}),
            ...(events ? { onInfo: (message: string) => events.emit({ type: 'log', level: 'info', message }) } : {}),
          }));
      pending = lookup(registry);
      this.#credentials.set(registry, pending);
      // A failed lookup (helper missing) is reported, not remembered.
      pending.catch(() => this.#credentials.delete(registry));
    }
    return pending;
  }

  /** The Authorization value for a request needing `scopes`, from what the registry last challenged with. */
  async #authorization(registry: string, scopes: string[], endpoint: Endpoint, fresh: boolean, signal: AbortSignal | undefined): Promise<string | undefined> {
    const challenge = this.#auth.get(registry)?.challenge;
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

  async #fetchToken(registry: string, challenge: Challenge, scopes: string[], endpoint: Endpoint): Promise<string> {
    const realm = challenge.params.realm;
    if (realm === undefined || realm === '') {
      throw new TskoError('REGISTRY_AUTH', `${registry} sent a Bearer challenge without a realm`);
    }
    const problem = realmProblem(realm, registry, endpoint.tls);
    if (problem !== undefined) throw new TskoError('REGISTRY_AUTH', `refusing ${registry}'s token server: ${problem}`);
    const creds = await this.#credentialsFor(registry);
    const service = challenge.params.service;
    const tokenEndpoint = (url: URL): Endpoint => ({ origin: url.origin, agent: url.host === registry ? endpoint.agent : this.#agent, tls: url.protocol === 'https:' });

    let res: Response | undefined;
    let operation = `token request to ${new URL(realm).host} for ${registry}`;
    if (creds?.username === IDENTITY_TOKEN_USER) {
      // An identity (refresh) token: OAuth2 first, as docker and ggcr do; a 404 means the server only has GET.
      const url = new URL(realm);
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.password, client_id: 'tsko', scope: scopes.join(' ') });
      if (service !== undefined) form.set('service', service);
      const body = Buffer.from(form.toString());
      res = await this.#dispatch(tokenEndpoint(url), url, {
        registry,
        method: 'POST',
        target: url,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: () => body,
        scopes: [],
        operation,
      }, undefined);
      if (res.status === 404) {
        await discard(res);
        res = undefined;
      }
    }
    if (res === undefined) {
      const url = tokenUrl(realm, service, scopes, creds?.username);
      operation = `token request to ${url.host} for ${registry}`;
      res = await this.#dispatch(tokenEndpoint(url), url, { registry, method: 'GET', target: url, headers: { accept: 'application/json' }, scopes: [], operation }, creds === undefined ? undefined : basicAuthorization(creds));
    }
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      if (creds !== undefined) {
        this.#credentials.delete(registry);
        throw new TskoError('REGISTRY_AUTH', `authentication failed for ${registry} as ${creds.username}`);
      }
      throw new TskoError('REGISTRY_AUTH', `${registry}'s token server refused anonymous access`, { hint: `run \`tsko login ${registry}\` or \`docker login ${registry}\`` });
    }
    // A 5xx from the token server is retried with the operation that needed the token.
    if (res.status !== 200) throw await this.#httpError(res, operation, registry);
    let parsed: ReturnType<typeof parseTokenResponse>;
    try {
      parsed = parseTokenResponse(JSON.parse((await this.#readBody(res, MAX_ERROR_BODY * 4, operation, registry, undefined)).toString('utf8')));
    } catch (err) {
      if (err instanceof TskoError) throw err;
      parsed = undefined;
    }
    if (parsed === undefined) throw new TskoError('REGISTRY_AUTH', `${operation}: the answer holds no token`);
    this.#tokens.set(registry, scopes, parsed.token, parsed.expiresIn);
    return parsed.token;
  }

  async #dispatch(endpoint: Endpoint, url: URL, spec: RequestSpec, authorization: string | undefined, extraHeaders?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent ?? 'tsko', ...spec.headers, ...extraHeaders };
    if (authorization !== undefined) headers.authorization = authorization;
    else delete headers.authorization;
    // A Location on another origin may need another agent (insecure vs verified).
    const agent = url.origin === endpoint.origin ? endpoint.agent : this.#agent;
    const started = Date.now();
    let data: Dispatcher.ResponseData;
    try {
      data = await agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: spec.method as Dispatcher.HttpMethod,
        headers,
        body: spec.body?.() ?? null,
        signal: spec.signal ?? null,
      });
    } catch (err) {
      throw this.#networkError(err, spec.operation, spec.registry, spec.signal);
    }
    this.#options.events?.emit({
      type: 'log',
      level: 'debug',
      message: redact(`${spec.method} ${url.origin}${url.pathname}${shortQuery(url)} → ${data.statusCode} (${Date.now() - started} ms)`),
    });
    const res: Response = { status: data.statusCode, headers: data.headers, body: data.body, url };
    for (const warning of headerAll(res, 'warning')) this.#warn(spec.registry, warning);
    return res;
  }

  #warn(registry: string, header: string): void {
    // `299 - "text"` (RFC 7234); registries use it for deprecations.
    const m = /^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"/.exec(header);
    if (m?.[1] === undefined) return;
    const text = `${registry}: ${m[1].replace(/\\(.)/g, '$1')}`;
    if (this.#warned.has(text)) return;
    this.#warned.add(text);
    this.#options.events?.emit({ type: 'log', level: 'warn', message: redact(`registry warning from ${text}`) });
  }

  async #readBody(res: Response, limit: number, operation: string, registry: string, signal: AbortSignal | undefined): Promise<Buffer> {
    try {
      return await readLimited(res.body, limit);
    } catch (err) {
      throw this.#networkError(err, operation, registry, signal);
    }
  }

  #networkError(err: unknown, operation: string, registry: string, signal: AbortSignal | undefined): TskoError {
    if (err instanceof TskoError) return err;
    if (isAbort(err, signal)) return new TskoError('ABORTED', 'aborted', { cause: err });
    const code = errnoCode(err) ?? 'network error';
    if (TLS_VERIFY_CODES.has(code)) {
      return new RegistryError('REGISTRY_UNREACHABLE', `TLS verification failed for ${registry} during ${operation} (${code})`, {
        retryable: false,
        causeCode: code,
        cause: err,
        hint: `trust its CA with registry.caFile in tsko.config.ts or NODE_EXTRA_CA_CERTS=/path/to/ca.pem, or skip verification with --insecure-registry (or registry.insecure: ['${registry}'])`,
      });
    }
    const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'host not found' : code;
    return new RegistryError('REGISTRY_UNREACHABLE', `cannot reach ${registry} for ${operation}: ${what}`, {
      retryable: TRANSIENT_NETWORK.has(code),
      causeCode: code,
      cause: err,
    });
  }

  async #httpError(res: Response, operation: string, registry: string): Promise<TskoError> {
    let summary: string | undefined;
    if (res.status !== 401) {
      try {
        summary = registryErrorSummary(await readLimited(res.body, MAX_ERROR_BODY));
      } catch {
        summary = undefined;
      }
    } else {
      await discard(res);
    }
    const retryAfter = parseRetryAfter(header(res, 'retry-after'));
    const message = redact(`${operation} failed: ${registry} answered ${res.status}${summary !== undefined ? ` ${summary}` : ''}`);
    return new RegistryError('REGISTRY_HTTP', message, {
      status: res.status,
      retryable: RETRYABLE_STATUS.has(res.status),
      causeCode: String(res.status),
      ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
    });
  }

  // ---------------------------------------------------------------- scheme selection

  #isInsecure(registry: string): boolean {
    const list = this.#options.insecureRegistries;
    if (list === true) return true;
    if (Array.isArray(list)) return list.some((r) => r.trim().toLowerCase() === registry.toLowerCase());
    return false;
  }

  #getInsecureAgent(): Agent {
    this.#insecureAgent ??= new Agent({
      connect: { timeout: this.#options.connectTimeoutMs ?? 10_000, rejectUnauthorized: false },
      headersTimeout: this.#options.responseTimeoutMs ?? 60_000,
      bodyTimeout: this.#options.responseTimeoutMs ?? 60_000,
    });
    return this.#insecureAgent;
  }

  /** Where to talk to a registry; remembered once it has answered. */
  #endpoint(registry: string, operation: string, signal: AbortSignal | undefined): Promise<Endpoint> {
    const loopback = isLoopbackRegistry(registry);
    const insecure = this.#isInsecure(registry);
    if (!loopback && !insecure) {
      const known = this.#endpoints.get(registry);
      if (known !== undefined) return known;
      const endpoint = Promise.resolve({ origin: new URL(`https://${registry}`).origin, agent: this.#agent, tls: true });
      this.#endpoints.set(registry, endpoint);
      return endpoint;
    }
    let pending = this.#endpoints.get(registry);
    if (pending === undefined) {
      pending = this.#probe(registry, loopback, insecure, operation, signal);
      this.#endpoints.set(registry, pending);
      // A registry that is down now may be up on the next call: only an answer is remembered.
      pending.catch(() => this.#endpoints.delete(registry));
    }
    return pending;
  }

  /**
   * Loopback registries speak plain http unless they turn out to be TLS (then verified normally,
   * or unverified with --insecure-registry); other insecure registries try https without
   * verification first, then http, as ggcr does.
   */
  async #probe(registry: string, loopback: boolean, insecure: boolean, operation: string, signal: AbortSignal | undefined): Promise<Endpoint> {
    const http: Endpoint = { origin: new URL(`http://${registry}`).origin, agent: this.#agent, tls: false };
    const https: Endpoint = { origin: new URL(`https://${registry}`).origin, agent: insecure ? this.#getInsecureAgent() : this.#agent, tls: true };
    const order = loopback ? [http, https] : [https, http];
    let firstError: unknown;
    for (const candidate of order) {
      const spec: RequestSpec = { registry, method: 'GET', target: '/v2/', scopes: [], operation, signal };
      try {
        const res = await this.#dispatch(candidate, new URL('/v2/', candidate.origin), spec, undefined);
        const body = await readLimited(res.body, 4096).catch(() => Buffer.alloc(0));
        // Go's TLS server answers plain http with this 400.
        if (!candidate.tls && res.status === 400 && /HTTPS server/i.test(body.toString('utf8'))) continue;
        if (res.status === 401) {
          const challenges = headerAll(res, 'www-authenticate').flatMap(parseWwwAuthenticate);
          const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
          if (challenge !== undefined) this.#authState(registry).challenge = challenge;
        }
        return candidate;
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        if (err.causeCode === 'ECONNREFUSED' || err.causeCode === 'ENOTFOUND' || TLS_VERIFY_CODES.has(err.causeCode)) throw err;
        // The first scheme's error is the telling one (and says whether a retry may help).
        firstError ??= err;
      }
    }
    throw firstError;
  }
}


export type { Action };
