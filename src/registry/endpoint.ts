// Where to reach a registry. https with verification unless told otherwise; loopback registries
// and those marked insecure are probed once with GET /v2/ (http or https, as ggcr's ping does),
// and the scheme that answered is remembered. Owns the undici Agents: one keep-alive pool per
// origin, and a second, unverified one only once an insecure registry needs it.
import { createRequire } from 'node:module';
import { getCACertificates, rootCertificates } from 'node:tls';
import type { Agent, Dispatcher } from 'undici';
import { abortable } from '../abort.js';
import { isLoopbackHost } from '../net/loopback.js';
import { type Challenge, preferredChallenge } from './auth.js';
import type { Dispatch, Endpoint, RegistryRequest } from './dispatch.js';
import { RegistryError, TLS_VERIFY_CODES, headerAll, readLimited } from './http.js';

export interface AgentOptions {
  /** Extra PEM CA certificates trusted besides Node's defaults (which include NODE_EXTRA_CA_CERTS). */
  caCertificates?: string[];
  connectTimeoutMs?: number;
  /** Time to wait for response headers and between body chunks. */
  responseTimeoutMs?: number;
}

/** The pools an endpoint can use: the verified one, and one that skips verification. */
export interface Pools {
  readonly verified: Dispatcher;
  insecure(): Dispatcher;
}

/** The CA list for `connect.ca`, or undefined to keep Node's default store. */
function trustedCas(extra: readonly string[]): string[] | undefined {
  if (extra.length === 0) return undefined;
  // `ca` replaces the default store, so start from it (which holds NODE_EXTRA_CA_CERTS too).
  const defaults = typeof getCACertificates === 'function' ? getCACertificates('default') : [...rootCertificates];
  return [...defaults, ...extra];
}

const require = createRequire(import.meta.url);

/**
 * undici, loaded when a pool is first made rather than when tsko starts: loading it costs ~50 ms
 * of start-up (with Node's compile cache), which a command overlaps with go list and go build by
 * calling warm() once go runs.
 */
function undici(): typeof import('undici') {
  return require('undici') as typeof import('undici');
}

export class Agents implements Pools {
  readonly #options: AgentOptions;
  #verified: Agent | undefined;
  #insecure: Agent | undefined;

  constructor(options: AgentOptions = {}) {
    this.#options = options;
  }

  get verified(): Agent {
    if (!this.#verified) {
      const options = this.#options;
      const ca = trustedCas(options.caCertificates ?? []);
      this.#verified = new (undici().Agent)({
        connect: { timeout: options.connectTimeoutMs ?? 10_000, ...(ca !== undefined ? { ca } : {}) },
        headersTimeout: options.responseTimeoutMs ?? 60_000,
        bodyTimeout: options.responseTimeoutMs ?? 60_000,
        keepAliveTimeout: 30_000,
      });
    }
    return this.#verified;
  }

  /** Makes the verified pool now (loading undici), while nothing waits on it. */
  warm(): void {
    void this.verified;
  }

  insecure(): Agent {
    this.#insecure ??= new (undici().Agent)({
      connect: { timeout: this.#options.connectTimeoutMs ?? 10_000, rejectUnauthorized: false },
      headersTimeout: this.#options.responseTimeoutMs ?? 60_000,
      bodyTimeout: this.#options.responseTimeoutMs ?? 60_000,
    });
    return this.#insecure;
  }

  async close(): Promise<void> {
    await Promise.all([this.#verified?.close(), this.#insecure?.close()]);
  }
}

/** True when `insecureRegistries` (true, or a list of host[:port]) names this registry. */
export function isInsecureRegistry(insecureRegistries: boolean | string[] | undefined, registry: string): boolean {
  if (insecureRegistries === true) return true;
  if (Array.isArray(insecureRegistries)) return insecureRegistries.some((r) => r.trim().toLowerCase() === registry.toLowerCase());
  return false;
}

export interface EndpointsOptions {
  pools: Pools;
  /** Plain http (or https without verification) for these registries, or for all when true. */
  insecureRegistries?: boolean | string[] | undefined;
  /** Sends the unauthenticated probe. */
  dispatch: Dispatch;
  /** Told the challenge a probe's 401 carried, so the first real request can answer it at once. */
  onChallenge: (registry: string, challenge: Challenge) => void;
}

/** Errors that say the scheme is right but the registry is not there (or not trusted): no other scheme is tried. */
function isDecisive(err: RegistryError): boolean {
  return err.causeCode === 'ECONNREFUSED' || err.causeCode === 'ENOTFOUND' || TLS_VERIFY_CODES.has(err.causeCode);
}

export class Endpoints {
  readonly #options: EndpointsOptions;
  readonly #known = new Map<string, Promise<Endpoint>>();

  constructor(options: EndpointsOptions) {
    this.#options = options;
  }

  /** Where to talk to a registry; remembered once it has answered. */
  resolve(registry: string, operation: string, signal: AbortSignal | undefined): Promise<Endpoint> {
    const known = this.#known.get(registry);
    if (known !== undefined) return abortable(known, signal);
    const loopback = isLoopbackHost(registry);
    const insecure = isInsecureRegistry(this.#options.insecureRegistries, registry);
    if (!loopback && !insecure) {
      const endpoint = Promise.resolve({ origin: new URL(`https://${registry}`).origin, agent: this.#options.pools.verified, tls: true });
      this.#known.set(registry, endpoint);
      return endpoint;
    }
    // Shared by every caller, so it runs without any one caller's signal; each waits on its own.
    const pending = this.#probe(registry, loopback, insecure, operation, undefined);
    this.#known.set(registry, pending);
    // A registry that is down now may be up on the next call: only an answer is remembered.
    pending.catch(() => this.#known.delete(registry));
    return abortable(pending, signal);
  }

  /**
   * Loopback registries speak plain http unless they turn out to be TLS (then verified normally,
   * or unverified when also insecure); other insecure registries try https without verification
   * first, then http, as ggcr does.
   */
  async #probe(registry: string, loopback: boolean, insecure: boolean, operation: string, signal: AbortSignal | undefined): Promise<Endpoint> {
    const { pools } = this.#options;
    const http: Endpoint = { origin: new URL(`http://${registry}`).origin, agent: pools.verified, tls: false };
    const https: Endpoint = { origin: new URL(`https://${registry}`).origin, agent: insecure ? pools.insecure() : pools.verified, tls: true };
    let firstError: unknown;
    for (const candidate of loopback ? [http, https] : [https, http]) {
      try {
        if (await this.#answers(candidate, { registry, method: 'GET', target: '/v2/', scopes: [], operation, signal })) return candidate;
      } catch (err) {
        if (!(err instanceof RegistryError) || isDecisive(err)) throw err;
        // The first scheme's error is the telling one (and says whether a retry may help).
        firstError ??= err;
      }
    }
    throw firstError;
  }

  /** True when the registry answered on this endpoint, false when it says it wants the other scheme. */
  async #answers(candidate: Endpoint, request: RegistryRequest): Promise<boolean> {
    const res = await this.#options.dispatch(candidate, new URL('/v2/', candidate.origin), request, undefined);
    const body = await readLimited(res.body, 4096).catch(() => Buffer.alloc(0));
    // Go's TLS server answers plain http with this 400.
    if (!candidate.tls && res.status === 400 && /HTTPS server/i.test(body.toString('utf8'))) return false;
    if (res.status === 401) {
      const challenge = preferredChallenge(headerAll(res, 'www-authenticate'));
      if (challenge !== undefined) this.#options.onChallenge(request.registry, challenge);
    }
    return true;
  }
}
