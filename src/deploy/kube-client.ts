// A small Kubernetes REST client over undici: the kubeconfig's credentials and TLS settings come
// from @kubernetes/client-node (applySecurityAuthentication, so exec plugins, tokens, client
// certs and proxies all work as the library implements them); requests, errors and the abort
// signal are ours, so every failure becomes one line that names the cluster, the user and the
// object. A 401 reloads the kubeconfig once (an exec plugin runs again, a rotated token file is
// read again) before it is reported. Watches stream their NDJSON events as they arrive.
import { readFile } from 'node:fs/promises';
import { request, type Dispatcher } from 'undici';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import { loadClientNode, loadKubeConnection, type KubeConfigOptions, type KubeConnection, type KubeUserExtras } from './kube-config.js';

export interface KubeRequest {
  method: 'GET' | 'PATCH' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: string;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

/** A Kubernetes failure with a reason of its own (`Unreachable`, `Forbidden`, …) for the preflight and rollout events. */
export class KubeError extends TskoError {
  readonly reason: string | undefined;
  constructor(reason: string | undefined, message: string, options: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super('KUBE', message, options);
    this.reason = reason;
  }
}

/** A non-2xx answer from the API server, with its metav1.Status reason. */
export class KubeApiError extends KubeError {
  readonly status: number;
  constructor(status: number, reason: string | undefined, message: string, hint?: string) {
    super(reason, message, hint === undefined ? {} : { hint });
    this.status = status;
  }
}

interface Status {
  kind?: string;
  message?: string;
  reason?: string;
  code?: number;
}

const REQUEST_TIMEOUT_MS = 30_000;
const MAX_BODY = 8 * 1024 * 1024;
/** client-go re-reads a tokenFile at most once a minute (a projected service-account token rotates). */
const TOKEN_FILE_TTL_MS = 60_000;

/** One event of a watch stream (`?watch=true`), as the API server writes it. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export class KubeClient {
  private connection: KubeConnection | undefined;
  private dispatcher: Dispatcher | undefined;
  private tokenFromFile: { value: string; readAt: number } | undefined;
  private readonly options: KubeConfigOptions;

  constructor(options: KubeConfigOptions) {
    this.options = options;
  }

  /** Loads the kubeconfig (once; again after a failure or a 401). */
  async connect(): Promise<KubeConnection> {
    this.connection ??= await loadKubeConnection(this.options);
    return this.connection;
  }

  /** Forgets the credentials: the next request reads the kubeconfig and runs exec plugins again. */
  async reset(): Promise<void> {
    this.connection = undefined;
    this.tokenFromFile = undefined;
    const old = this.dispatcher;
    this.dispatcher = undefined;
    await old?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.reset();
  }

  /** Sends a request and parses a JSON answer. */
  async json<T>(req: KubeRequest): Promise<T> {
    const text = await this.text(req);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new TskoError('KUBE', `${req.method} ${req.path}: the API server answered with something that is not JSON`);
    }
  }

  async text(req: KubeRequest): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const connection = await this.connect();
      const { status, body } = await this.send(connection, req);
      if (status >= 200 && status < 300) return body;
      if (status === 401 && attempt === 1) {
        // An expired token: read the kubeconfig and run its exec plugin again, once.
        await this.reset();
        continue;
      }
      throw apiError(connection, req, status, body);
    }
  }

  /**
   * Streams a watch (`req.query.watch` is set by the caller): each event as it arrives, until the
   * server ends the stream (its timeoutSeconds) or `req.signal` aborts. A non-2xx answer throws as
   * text() does (a 401 after one reload).
   */
  async *watch<T>(req: KubeRequest): AsyncGenerator<WatchEvent<T>> {
    for (let attempt = 1; ; attempt++) {
      const connection = await this.connect();
      const res = await this.open(connection, req, false);
      if (res.statusCode < 200 || res.statusCode >= 300) {
        const body = await res.body.text().catch(() => '');
        if (res.statusCode === 401 && attempt === 1) {
          await this.reset();
          continue;
        }
        throw apiError(connection, req, res.statusCode, body);
      }
      let buffer = '';
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk as Buffer, { stream: true });
          let newline: number;
          while ((newline = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (line) yield JSON.parse(line) as WatchEvent<T>;
          }
          if (buffer.length > MAX_BODY) throw new TskoError('KUBE', `${req.method} ${req.path}: a watch event is larger than ${MAX_BODY} bytes`);
        }
      } catch (err) {
        if (err instanceof TskoError) throw err;
        throwIfAborted(req.signal);
        throw unreachable(connection, err);
      } finally {
        res.body.destroy();
      }
      return;
    }
  }

  private async send(connection: KubeConnection, req: KubeRequest): Promise<{ status: number; body: string }> {
    try {
      const res = await this.open(connection, req, true);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_BODY) {
          res.body.destroy();
          throw new TskoError('KUBE', `${req.method} ${req.path}: the answer is larger than ${MAX_BODY} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      return { status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      if (err instanceof TskoError) throw err;
      throwIfAborted(req.signal);
      throw unreachable(connection, err);
    }
  }

  /** Sends the request; `bounded` limits the whole exchange to REQUEST_TIMEOUT_MS (a watch only its headers). */
  private async open(connection: KubeConnection, req: KubeRequest, bounded: boolean): Promise<Dispatcher.ResponseData> {
    const url = new URL(connection.server + req.path);
    for (const [key, value] of Object.entries(req.query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string | string[]> = { accept: req.accept ?? 'application/json', 'user-agent': 'tsko' };
    if (req.contentType) headers['content-type'] = req.contentType;
    let dispatcher = this.dispatcher;
    // Like kubectl, send no credentials over plain http (kubernetes/kubectl#744).
    if (url.protocol === 'https:') {
      const auth = await this.authenticate(connection, url);
      const extra = await this.extraHeaders(connection);
      // One Authorization header: the token file's replaces whatever client-node set, in any case.
      if (extra.authorization) for (const key of Object.keys(auth.headers)) if (key.toLowerCase() === 'authorization') delete auth.headers[key];
      Object.assign(headers, auth.headers, extra);
      if (!dispatcher && auth.dispatcher) this.dispatcher = dispatcher = auth.dispatcher;
      else if (auth.dispatcher && auth.dispatcher !== dispatcher) void auth.dispatcher.close().catch(() => undefined);
    }
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const signal = bounded ? (req.signal ? AbortSignal.any([req.signal, timeout]) : timeout) : req.signal;
    try {
      return await request(url, {
        method: req.method,
        headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        ...(dispatcher ? { dispatcher } : {}),
        ...(bounded ? {} : { headersTimeout: REQUEST_TIMEOUT_MS }),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (err instanceof TskoError) throw err;
      throwIfAborted(req.signal);
      throw unreachable(connection, err);
    }
  }

  /** What kubectl sends for the user's fields client-node leaves out: the token file's token, impersonation. */
  private async extraHeaders(connection: KubeConnection): Promise<Record<string, string | string[]>> {
    const extras: KubeUserExtras = connection.extras;
    const headers: Record<string, string | string[]> = {};
    if (extras.tokenFile) {
      const token = await this.readTokenFile(connection, extras.tokenFile, extras.token);
      headers.authorization = `Bearer ${token}`;
    }
    if (extras.impersonateUid) headers['impersonate-uid'] = extras.impersonateUid;
    if (extras.impersonateGroups?.length) headers['impersonate-group'] = extras.impersonateGroups;
    for (const [key, values] of Object.entries(extras.impersonateExtra ?? {})) headers[`impersonate-extra-${encodeURIComponent(key)}`] = values;
    return headers;
  }

  private async readTokenFile(connection: KubeConnection, file: string, fallback: string | undefined): Promise<string> {
    const cached = this.tokenFromFile;
    if (cached && performance.now() - cached.readAt < TOKEN_FILE_TTL_MS) return cached.value;
    try {
      const value = (await readFile(file, 'utf8')).trim();
      if (value === '') throw Object.assign(new Error('it is empty'), { code: 'EMPTY' });
      this.tokenFromFile = { value, readAt: performance.now() };
      return value;
    } catch (err) {
      // client-go keeps the last token it read (or the kubeconfig's `token`) when a re-read fails.
      const last = cached?.value ?? fallback;
      if (last !== undefined) return last;
      const code = (err as NodeJS.ErrnoException).code;
      throw new KubeError('CredentialsUnavailable', `cannot read the tokenFile ${file} of kubeconfig user "${connection.user}" (${where(connection)}): ${code === 'EMPTY' ? 'it is empty' : (code ?? (err as Error).message)}`, {
        hint: 'fix the path in the kubeconfig, or make the file readable',
      });
    }
  }

  private async authenticate(connection: KubeConnection, url: URL): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
    const { RequestContext, HttpMethod } = await loadClientNode();
    const context = new RequestContext(url.href, HttpMethod.GET);
    try {
      await connection.kc.applySecurityAuthentication(context);
    } catch (err) {
      throw credentialError(connection, err);
    }
    return { headers: context.getHeaders(), dispatcher: context.getDispatcher() };
  }
}

function where(connection: KubeConnection): string {
  return `context "${connection.context}"`;
}

function credentialError(connection: KubeConnection, err: unknown): TskoError {
  const exec = connection.kc.getCurrentUser()?.exec as { command?: string } | undefined;
  const message = (err instanceof Error ? err.message : String(err)).trim().split('\n')[0] || 'it failed';
  if (exec?.command) {
    const missing = (err as { code?: string }).code === 'ENOENT';
    return new KubeError('CredentialsUnavailable', `the exec plugin ${exec.command} of kubeconfig user "${connection.user}" (${where(connection)}) ${missing ? 'is not on PATH' : `failed: ${message}`}`, {
      cause: err,
      hint: missing ? `install ${exec.command}, or pick another --context` : `run ${exec.command} yourself to see why`,
    });
  }
  return new KubeError('CredentialsUnavailable', `cannot use the credentials of kubeconfig user "${connection.user}" (${where(connection)}): ${message}`, { cause: err });
}

function unreachable(connection: KubeConnection, err: unknown): TskoError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = (err as { code?: string }).code ?? cause?.code ?? '';
  const message = cause?.message ?? (err instanceof Error ? err.message : String(err));
  if (code === 'UND_ERR_ABORTED' || (err as Error).name === 'TimeoutError' || code === 'ABORT_ERR') {
    return new KubeError('Timeout', `the cluster at ${connection.server} (${where(connection)}) did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`, { cause: err });
  }
  const tls = /certificate|self.signed|CERT_/i.test(`${code} ${message}`);
  return new KubeError(tls ? 'CertificateInvalid' : 'Unreachable', `cannot reach the cluster at ${connection.server} (${where(connection)}): ${message}`, {
    cause: err,
    hint: tls ? "the server's certificate is not trusted: check the cluster's certificate-authority-data" : 'is the cluster running, and is this the right context?',
  });
}

const VERBS: Record<KubeRequest['method'], string> = { GET: 'get', PATCH: 'patch', POST: 'create', PUT: 'update', DELETE: 'delete' };

/** The `kubectl auth can-i` line for a refused request: its verb, resource(.group)[/name] and namespace. */
function canIFor(connection: KubeConnection, req: KubeRequest): string {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?/.exec(req.path);
  const verb = req.query?.watch === 'true' ? 'watch' : VERBS[req.method];
  if (!m) return `kubectl auth can-i ${verb} ${req.path} --context ${connection.context}`;
  const [, group, namespace, resource, name] = m;
  return `kubectl auth can-i ${verb} ${resource}${group ? `.${group}` : ''}${name ? `/${name}` : ''}${namespace ? ` -n ${namespace}` : ''} --context ${connection.context}`;
}

function apiError(connection: KubeConnection, req: KubeRequest, status: number, body: string): KubeApiError {
  let parsed: Status = {};
  try {
    parsed = JSON.parse(body) as Status;
  } catch {
    // Not a metav1.Status: a proxy or a load balancer answered.
  }
  const detail = parsed.message || body.trim().split('\n')[0]?.slice(0, 200) || `HTTP ${status}`;
  if (status === 401) {
    return new KubeApiError(
      status,
      parsed.reason ?? 'Unauthorized',
      `the cluster at ${connection.server} rejected the credentials of kubeconfig user "${connection.user}" (${where(connection)}) even after reloading them: ${detail}`,
      'the token may have expired: log in again (for GKE: gcloud auth login), then save again',
    );
  }
  if (status === 403) {
    return new KubeApiError(
      status,
      parsed.reason ?? 'Forbidden',
      `kubeconfig user "${connection.user}" (${where(connection)}) may not ${req.method} ${req.path}: ${detail}`,
      `ask for the permission; check it with ${canIFor(connection, req)}`,
    );
  }
  return new KubeApiError(status, parsed.reason, `${req.method} ${req.path}: ${detail} (HTTP ${status})`);
}
