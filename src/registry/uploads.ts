// Blob uploads over the registry transport: a session (POST), then one monolithic PUT or PATCH
// chunks and a closing PUT with `?digest=`. An upload is retried as a whole, from a new session,
// reopening its body through the caller's factory.
import { Readable } from 'node:stream';
import { TskoError } from '../errors.js';
import { repositoryScope } from './auth.js';
import type { BodyFactory } from './dispatch.js';
import { type Response, appendQuery, discard, header, httpError } from './http.js';
import { type Repository, formatRepository } from './reference.js';
import type { RegistryTransport } from './transport.js';

/** What every request of one upload shares. */
export interface UploadContext {
  transport: RegistryTransport;
  target: Repository;
  scopes: string[];
  operation: string;
  signal: AbortSignal | undefined;
}

/** Where the session continues: the Location of an answer, resolved against the URL it came from. */
export function location(res: Response, operation: string): URL {
  const loc = header(res, 'location');
  if (loc === undefined || loc === '') {
    throw new TskoError('REGISTRY_HTTP', `${operation}: registry answered ${res.status} without a Location header`);
  }
  return new URL(loc, res.url);
}

/** One request of the upload session, with what every request of the upload shares. */
function sendInSession(ctx: UploadContext, method: 'POST' | 'PATCH' | 'PUT', target: string | URL, headers: Record<string, string>, body?: BodyFactory): Promise<Response> {
  const { transport, scopes, operation, signal } = ctx;
  return transport.send({ registry: ctx.target.registry, method, target, headers, ...(body !== undefined ? { body } : {}), scopes, operation, signal });
}

/** A 202 that says where the session continues. */
async function accepted(ctx: UploadContext, res: Response): Promise<URL> {
  if (res.status !== 202) throw await httpError(res, ctx.operation, ctx.target.registry);
  await discard(res);
  return location(res, ctx.operation);
}

export async function startUpload(ctx: UploadContext): Promise<URL> {
  return accepted(ctx, await sendInSession(ctx, 'POST', `/v2/${ctx.target.repository}/blobs/uploads/`, { 'content-length': '0' }));
}

/** Checks the answer to the closing PUT, including the digest the registry says it stored. */
export async function finishUpload(res: Response, digest: string, operation: string, registry: string): Promise<void> {
  if (res.status !== 201 && res.status !== 204) throw await httpError(res, operation, registry);
  await discard(res);
  const claimed = header(res, 'docker-content-digest');
  if (claimed !== undefined && claimed !== '' && claimed !== digest) {
    throw new TskoError('REGISTRY_DIGEST', `${registry} stored the blob as ${claimed}, expected ${digest}`);
  }
}

/** Abandons the session an answer opened (its Location), if it names one. */
export async function cancelUpload({ transport, target, scopes, signal }: UploadContext, res: Response): Promise<void> {
  const loc = header(res, 'location');
  if (loc === undefined) return;
  try {
    const del = await transport.send({ registry: target.registry, method: 'DELETE', target: new URL(loc, res.url), scopes, operation: 'cancel upload', signal });
    await discard(del);
  } catch (err) {
    if (signal?.aborted) throw err;
    // An abandoned session only costs the registry a little disk until it is garbage collected.
  }
}

function pushContext(transport: RegistryTransport, target: Repository, operation: string, signal: AbortSignal | undefined): UploadContext {
  return { transport, target, scopes: [repositoryScope(target.repository, ['pull', 'push'])], operation, signal };
}

/** A session of its own retries: a dropped POST should cost a POST, not a turn of the whole upload's budget. */
function startUploadRetrying(ctx: UploadContext): Promise<URL> {
  return ctx.transport.retrying(ctx.operation, ctx.signal, () => startUpload(ctx));
}

/** The closing PUT: the session's Location plus `?digest=`. */
async function closeUpload(ctx: UploadContext, session: URL, digest: string, headers: Record<string, string>, body?: BodyFactory): Promise<void> {
  const res = await sendInSession(ctx, 'PUT', appendQuery(session, 'digest', digest), headers, body);
  await finishUpload(res, digest, ctx.operation, ctx.target.registry);
}

/**
 * Uploads a blob: POST for a session, then one monolithic PUT with the body and `?digest=`.
 * Retried as a whole, reopening the body through the factory.
 */
export async function uploadBlob(transport: RegistryTransport, target: Repository, digest: string, size: number, body: BodyFactory, signal?: AbortSignal): Promise<void> {
  const ctx = pushContext(transport, target, `upload blob ${formatRepository(target)}@${digest}`, signal);
  await transport.retrying(ctx.operation, signal, async () => {
    const session = await startUploadRetrying(ctx);
    await closeUpload(ctx, session, digest, { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body);
  });
}

/** Sends one PATCH of a chunked upload; returns where the session continues. */
async function sendChunk(ctx: UploadContext, session: URL, chunk: Buffer, start: number): Promise<URL> {
  const headers = {
    'content-type': 'application/octet-stream',
    'content-length': String(chunk.length),
    'content-range': `${start}-${start + chunk.length - 1}`,
  };
  return accepted(ctx, await sendInSession(ctx, 'PATCH', session, headers, () => chunk));
}

export async function uploadBlobChunked(transport: RegistryTransport, target: Repository, digest: string, data: Buffer, chunkSize: number, signal?: AbortSignal): Promise<void> {
  if (!(chunkSize > 0)) throw new TskoError('INTERNAL', `chunk size must be positive, got ${chunkSize}`);
  const ctx = pushContext(transport, target, `chunked upload blob ${formatRepository(target)}@${digest}`, signal);
  await transport.retrying(ctx.operation, signal, async () => {
    let session = await startUploadRetrying(ctx);
    for (let start = 0; start < data.length; start += chunkSize) {
      session = await sendChunk(ctx, session, data.subarray(start, Math.min(data.length, start + chunkSize)), start);
    }
    await closeUpload(ctx, session, digest, { 'content-length': '0' });
  });
}

/** An upload whose bytes are sent while they are still being made (one streamed PATCH). */
export interface StreamedUpload {
  /** Settles when the PATCH is answered: rejects when the stream failed (then `finish` fails too). */
  readonly sent: Promise<void>;
  /**
   * Once the body has ended: checks the registry took `size` bytes and closes the session with
   * `PUT ?digest=`. Not retried: a streamed body cannot be replayed, so a failure here is the
   * caller's cue to upload again from wherever the bytes were kept.
   */
  finish(digest: string, size: number): Promise<void>;
  /** Abandons the session (best effort): the registry never stores a blob for it. */
  cancel(): Promise<void>;
}

/**
 * Starts a streamed upload: POST for a session (retried on its own), then one PATCH whose body is
 * `body` as it comes (Transfer-Encoding: chunked, no Content-Range: the "stream" flow of ggcr,
 * skopeo and distribution). The PATCH goes out once, never replayed: a 401 on it (which would send
 * the body again) fails the upload instead.
 */
export function beginStreamedUpload(transport: RegistryTransport, target: Repository, body: AsyncIterable<Buffer>, signal?: AbortSignal): StreamedUpload {
  // cancel() stops a PATCH still sending; the DELETE then goes under the caller's signal only.
  const stop = new AbortController();
  const ctx = pushContext(transport, target, `streamed upload blob ${formatRepository(target)}`, signal ? AbortSignal.any([signal, stop.signal]) : stop.signal);
  let session: URL | undefined;
  const patched = (async () => {
    session = await startUploadRetrying(ctx);
    let sent = false;
    const once: BodyFactory = () => {
      if (sent) throw new TskoError('REGISTRY_HTTP', `${ctx.operation}: the registry asked for the streamed body again; it cannot be replayed`);
      sent = true;
      return Readable.from(body, { objectMode: false });
    };
    const res = await sendInSession(ctx, 'PATCH', session, { 'content-type': 'application/octet-stream' }, once);
    if (res.status !== 202) throw await httpError(res, ctx.operation, ctx.target.registry);
    await discard(res);
    session = location(res, ctx.operation);
    return { session, range: header(res, 'range') };
  })();
  // Observed by finish() or cancel(); until then a failure is only remembered.
  patched.catch(() => undefined);
  const sent = patched.then(() => undefined);
  sent.catch(() => undefined);
  return {
    sent,
    async finish(digest, size) {
      const { session: next, range } = await patched;
      // `Range: 0-<last byte>`: a registry that says it holds fewer bytes lost some on the way.
      if (range !== undefined && range !== '' && size > 0 && range !== `0-${size - 1}`) {
        throw new TskoError('REGISTRY_HTTP', `${ctx.operation}: registry holds bytes ${range} of ${size}`);
      }
      await closeUpload({ ...ctx, operation: `${ctx.operation}@${digest}` }, next, digest, { 'content-length': '0' });
    },
    async cancel() {
      stop.abort();
      await patched.catch(() => undefined);
      if (session === undefined) return;
      try {
        const del = await transport.send({ registry: target.registry, method: 'DELETE', target: session, scopes: ctx.scopes, operation: 'cancel upload', signal });
        await discard(del);
      } catch {
        // An abandoned session only costs the registry a little disk until it is garbage collected.
      }
    },
  };
}
