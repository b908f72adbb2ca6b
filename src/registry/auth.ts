// Registry authentication pieces that need no HTTP client of their own: parsing WWW-Authenticate
// (RFC 7235), building Basic headers, choosing token scopes, checking a token realm is safe to
// send credentials to, and caching Bearer tokens per (registry, scope set) until they expire.
import { isIP } from 'node:net';
import { isLoopbackHost } from '../net/loopback.js';
import { registryHostname } from './reference.js';

export interface Challenge {
  /** Lower-cased auth scheme, e.g. `basic`, `bearer`. */
  scheme: string;
  /** Parameters with lower-cased names. */
  params: Record<string, string>;
}

export interface Credentials {
  username: string;
  password: string;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a WWW-Authenticate value into its challenges. Tolerant: a malformed tail ends the parse
 * and keeps what was understood, because the caller only needs the first usable challenge.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string | undefined => {
    // header[i] === '"'
    i++;
    let out = '';
    while (i < n) {
      const c = header[i]!;
      if (c === '\\' && i + 1 < n) {
        out += header[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return out;
      } else {
        out += c;
        i++;
      }
    }
    return undefined; // unterminated
  };

  while (i < n) {
    skipSpace();
    while (i < n && header[i] === ',') {
      i++;
      skipSpace();
    }
    if (i >= n) break;
    const scheme = readToken();
    if (scheme === '') break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    // auth-params; a token that is not followed by '=' starts the next challenge.
    for (;;) {
      skipSpace();
      const save = i;
      const name = readToken();
      skipSpace();
      if (name === '' || header[i] !== '=') {
        i = save;
        break;
      }
      i++; // '='
      skipSpace();
      const value = header[i] === '"' ? readQuoted() : readToken();
      if (value === undefined) return challenges;
      challenge.params[name.toLowerCase()] = value;
      skipSpace();
      if (header[i] !== ',') break;
      i++;
    }
  }
  return challenges;
}

/** The challenge to answer among a response's WWW-Authenticate values: Bearer over Basic, nothing else. */
export function preferredChallenge(values: readonly string[]): Challenge | undefined {
  const challenges = values.flatMap(parseWwwAuthenticate);
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}

export function basicAuthorization(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}

export type Action = 'pull' | 'push';

export function repositoryScope(repository: string, actions: readonly Action[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

/** Scopes the request needs first, then any the registry asked for that are not yet covered. */
export function mergeScopes(needed: readonly string[], challenged: string | undefined): string[] {
  const out = [...needed];
  if (challenged !== undefined) {
    for (const scope of challenged.split(' ')) {
      // Registries may list actions in any order (`push,pull`); only a scope we lack is added.
      if (scope !== '' && !scopesCover(out, [scope])) out.push(scope);
    }
  }
  return out;
}

function isPrivateOrLoopbackIp(host: string): boolean {
  const family = isIP(host);
  if (family === 4) {
    const [a = 0, b = 0] = host.split('.').map(Number);
    return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
  }
  if (family === 6) {
    const h = host.toLowerCase();
    return h === '::1' || h === '::' || h.startsWith('fc') || h.startsWith('fd') || h.startsWith('fe80:') || h.startsWith('::ffff:');
  }
  return false;
}

/**
 * Why a token realm must not be used, or undefined when it is fine. Mirrors ggcr's validateRealmURL:
 * no plain-http realm for a TLS registry, and no private/loopback IP literal unless the registry
 * itself is local (then the realm cannot reach anything the registry could not already).
 */
export function realmProblem(realm: string, registry: string, registryIsTls: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    return `token realm "${realm}" is not a URL`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `token realm "${realm}" is not http(s)`;
  if (registryIsTls && url.protocol === 'http:') return `token realm "${realm}" is plain http for a TLS registry`;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isPrivateOrLoopbackIp(host)) {
    const registryHost = registryHostname(registry);
    const registryLocal = isLoopbackHost(registry) || isPrivateOrLoopbackIp(registryHost);
    if (!registryLocal && url.host !== registry) return `token realm "${realm}" points at a private address`;
  }
  return undefined;
}

interface CachedToken {
  registry: string;
  scopes: readonly string[];
  token: string;
  expiresAt: number;
}

/** Splits `type:name:actions` at its first and last colon (a name never holds one, a type never does). */
function splitScope(scope: string): { resource: string; actions: string[] } | undefined {
  const last = scope.lastIndexOf(':');
  if (last <= 0) return undefined;
  return { resource: scope.slice(0, last), actions: scope.slice(last + 1).split(',') };
}

/** True when a token granted `held` scopes also serves `needed` (e.g. pull,push serves pull). */
export function scopesCover(held: readonly string[], needed: readonly string[]): boolean {
  return needed.every((need) => {
    if (held.includes(need)) return true;
    const n = splitScope(need);
    if (n === undefined) return false;
    return held.some((h) => {
      const g = splitScope(h);
      return g !== undefined && g.resource === n.resource && n.actions.every((a) => g.actions.includes(a));
    });
  });
}

/**
 * Bearer tokens per (registry, scope set), forgotten shortly before they expire. A token for a
 * wider scope set serves a narrower request, so a push's pull,push token also answers its HEADs.
 */
export class TokenCache {
  readonly #tokens = new Map<string, CachedToken>();

  static key(registry: string, scopes: readonly string[]): string {
    return `${registry} ${[...scopes].sort().join(' ')}`;
  }

  get(registry: string, scopes: readonly string[], now = Date.now()): string | undefined {
    const exact = this.#fresh(TokenCache.key(registry, scopes), now);
    if (exact !== undefined) return exact.token;
    for (const [key, entry] of this.#tokens) {
      if (entry.registry === registry && this.#fresh(key, now) !== undefined && scopesCover(entry.scopes, scopes)) return entry.token;
    }
    return undefined;
  }

  #fresh(key: string, now: number): CachedToken | undefined {
    const hit = this.#tokens.get(key);
    if (hit === undefined) return undefined;
    if (hit.expiresAt <= now) {
      this.#tokens.delete(key);
      return undefined;
    }
    return hit;
  }

  set(registry: string, scopes: readonly string[], token: string, expiresInSeconds: number, now = Date.now()): void {
    // Keep a margin so a token does not expire between the cache check and the request.
    const lifetimeMs = Math.max(1, expiresInSeconds) * 1000;
    const margin = Math.min(10_000, lifetimeMs / 10);
    this.#tokens.set(TokenCache.key(registry, scopes), { registry, scopes: [...scopes], token, expiresAt: now + lifetimeMs - margin });
  }

  /** Forgets a token the registry refused, under whatever scope sets it was cached. */
  deleteToken(registry: string, token: string): void {
    for (const [key, entry] of this.#tokens) {
      if (entry.registry === registry && entry.token === token) this.#tokens.delete(key);
    }
  }

  delete(registry: string, scopes: readonly string[]): void {
    this.#tokens.delete(TokenCache.key(registry, scopes));
  }

  clear(): void {
    this.#tokens.clear();
  }
}

export interface TokenResponse {
  token: string;
  expiresIn: number;
}

/** Reads `token` or `access_token` and `expires_in` (default 60 s) from a token server's JSON. */
export function parseTokenResponse(json: unknown): TokenResponse | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const o = json as Record<string, unknown>;
  const token = typeof o.token === 'string' && o.token !== '' ? o.token : typeof o.access_token === 'string' ? o.access_token : undefined;
  if (token === undefined || token === '') return undefined;
  const expiresIn = typeof o.expires_in === 'number' && o.expires_in > 0 ? o.expires_in : 60;
  return { token, expiresIn };
}

/** The token endpoint URL: realm plus service, each scope, and account when credentials are known. */
export function tokenUrl(realm: string, service: string | undefined, scopes: readonly string[], account?: string): URL {
  const url = new URL(realm);
  if (service !== undefined && service !== '') url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  if (account !== undefined && account !== '') url.searchParams.set('account', account);
  return url;
}
