// HTTP plumbing under the registry client: the response shape, error classification (which
// failures a retry may cure, which are TLS trust problems) and the errors built from it, bounded
// body reads, the registry's error JSON, and URL helpers that keep a Location's own query intact.
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { TskoError } from '../errors.js';
import { redact } from '../redact.js';
import { parseRetryAfter } from './retry.js';

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  url: URL;
}

export const RETRYABLE_STATUS = new Set([408, 429, 499, 500, 502, 503, 504, 522]);
export const TRANSIENT_NETWORK = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
]);
export const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
export const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
export const MAX_ERROR_BODY = 64 * 1024;
/** docker's convention: this user name means the password is an identity (refresh) token. */
export const IDENTITY_TOKEN_USER = '<token>';
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

/** A registry error with what retry classification needs. */
export class RegistryError extends TskoError {
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly causeCode: string;

  constructor(
    code: 'REGISTRY_UNREACHABLE' | 'REGISTRY_HTTP',
    message: string,
    extra: { status?: number; retryable: boolean; retryAfterMs?: number; causeCode: string; hint?: string; cause?: unknown },
  ) {
    super(code, message, {
      ...(extra.hint !== undefined ? { hint: extra.hint } : {}),
      ...(extra.cause !== undefined ? { cause: extra.cause } : {}),
    });
    this.status = extra.status;
    this.retryable = extra.retryable;
    this.retryAfterMs = extra.retryAfterMs;
    this.causeCode = extra.causeCode;
  }
}

export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function headerAll(res: Response, name: string): string[] {
  const v = res.headers[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function errnoCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e !== null && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR' && code !== 'ERR_INVALID_STATE') return code;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) {
      e = errors[0];
      continue;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return true;
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'AbortError' || errnoCode(err) === 'UND_ERR_ABORTED' || errnoCode(err) === 'ABORT_ERR';
}

/** Reads at most `limit` bytes of a body; the rest is discarded. */
export async function readLimited(body: Response['body'], limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > limit) {
      chunks.push(buf.subarray(0, limit - size));
      body.destroy();
      break;
    }
    chunks.push(buf);
    size += buf.length;
  }
  return Buffer.concat(chunks);
}

/** A body read of at most `limit` bytes whose failure is reported like any network failure. */
export async function readBody(res: Response, limit: number, operation: string, registry: string, signal: AbortSignal | undefined): Promise<Buffer> {
  try {
    return await readLimited(res.body, limit);
  } catch (err) {
    throw networkError(err, operation, registry, signal);
  }
}

export async function discard(res: Response): Promise<void> {
  try {
    await res.body.dump({ limit: MAX_ERROR_BODY });
  } catch {
    // A body we do not need may fail to drain; the socket is then simply not reused.
  }
}

export function registryErrorSummary(bytes: Buffer): string | undefined {
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = json.errors?.[0];
    if (first === undefined) return undefined;
    const parts = [typeof first.code === 'string' ? first.code : '', typeof first.message === 'string' ? first.message : ''];
    const text = parts.filter((p) => p !== '').join(': ');
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** A failed exchange as one error: aborts stay aborts, TLS trust problems say how to fix them, and only transient socket errors may be retried. */
export function networkError(err: unknown, operation: string, registry: string, signal: AbortSignal | undefined): TskoError {
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

/** An answer the operation cannot use, with the registry's own error text (never a 401's) and its Retry-After. */
export async function httpError(res: Response, operation: string, registry: string): Promise<TskoError> {
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

/** The query for a log line; upload `_state` blobs are long and say nothing to a reader. */
export function shortQuery(url: URL): string {
  return url.search.length > 80 ? `${url.search.slice(0, 77)}…` : url.search;
}

export function appendQuery(url: URL, name: string, value: string): URL {
  // Append rather than rebuild: a Location's own parameters (`_state=`) must pass through byte for byte.
  const sep = url.href.endsWith('?') ? '' : url.search !== '' ? '&' : '?';
  return new URL(`${url.href}${sep}${name}=${encodeURIComponent(value)}`);
}

/** The `mediaType` field a manifest carries in its JSON, for registries that send a generic Content-Type. */
export function embeddedMediaType(bytes: Buffer): string | undefined {
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof json.mediaType === 'string' ? json.mediaType : undefined;
  } catch {
    return undefined;
  }
}
