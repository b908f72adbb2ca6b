// One HTTP exchange with a registry or its token server, and what every exchange does on the way:
// the user agent, Authorization only when the caller hands one over, a redacted debug line, and
// each registry `Warning: 299` shown once. Scheme choice, auth and retry live above this.
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { EventBus } from '../events.js';
import { redact } from '../redact.js';
import { type Response, headerAll, networkError, shortQuery } from './http.js';

/** Opens a request body; called again for each attempt, because undici cannot replay a consumed stream. */
export type BodyFactory = () => Buffer | Readable | Promise<Buffer | Readable>;

/** Where a registry answers and the pool that reaches it (verified or not). */
export interface Endpoint {
  origin: string;
  agent: Dispatcher;
  tls: boolean;
}

export interface RegistryRequest {
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

export type Dispatch = (endpoint: Endpoint, url: URL, request: RegistryRequest, authorization: string | undefined) => Promise<Response>;

export interface DispatchOptions {
  /** The pool for a URL outside the endpoint's origin (a Location or redirect elsewhere). */
  fallback: Dispatcher;
  userAgent?: string | undefined;
  events?: EventBus | undefined;
}

/** The text of a `299 - "text"` Warning (RFC 7234), which registries use for deprecations. */
export function warningText(value: string): string | undefined {
  const m = /^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"/.exec(value);
  return m?.[1]?.replace(/\\(.)/g, '$1');
}

function requestHeaders(request: RegistryRequest, userAgent: string, authorization: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': userAgent, ...request.headers };
  if (authorization !== undefined) headers.authorization = authorization;
  else delete headers.authorization;
  return headers;
}

export function createDispatch(options: DispatchOptions): Dispatch {
  const { events } = options;
  /** Warnings already shown: each is reported once, never acted on. */
  const warned = new Set<string>();
  const warn = (registry: string, value: string): void => {
    const text = warningText(value);
    if (text === undefined) return;
    const key = `${registry}: ${text}`;
    if (warned.has(key)) return;
    warned.add(key);
    events?.emit({ type: 'log', level: 'warn', message: redact(`registry warning from ${key}`) });
  };

  return async (endpoint, url, request, authorization) => {
    // A Location on another origin may need another pool (insecure vs verified).
    const agent = url.origin === endpoint.origin ? endpoint.agent : options.fallback;
    const started = Date.now();
    let data: Dispatcher.ResponseData;
    try {
      data = await agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method as Dispatcher.HttpMethod,
        headers: requestHeaders(request, options.userAgent ?? 'tsko', authorization),
        body: (await request.body?.()) ?? null,
        signal: request.signal ?? null,
      });
    } catch (err) {
      throw networkError(err, request.operation, request.registry, request.signal);
    }
    events?.emit({
      type: 'log',
      level: 'debug',
      message: redact(`${request.method} ${url.origin}${url.pathname}${shortQuery(url)} → ${data.statusCode} (${Date.now() - started} ms)`),
    });
    const res: Response = { status: data.statusCode, headers: data.headers, body: data.body, url };
    for (const warning of headerAll(res, 'warning')) warn(request.registry, warning);
    return res;
  };
}
