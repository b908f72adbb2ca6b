// Turns a request into a handler call. The path is split by hand, never through URL resolution,
// so "/v2/../x/…" reaches the name check as "../x" and fails it instead of being normalised away.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authenticator } from './auth.js';
import { cancelUpload, deleteBlob, finishUpload, getBlob, patchUpload, startUpload, uploadStatus } from './blobs.js';
import type { RegistryContext, RouteRequest } from './context.js';
import { isDiskFull, RegistryError, StorageFullError } from './errors.js';
import { deleteManifest, getManifest, listCatalog, listReferrers, listTags, putManifest } from './manifests.js';
import { isRepositoryName } from './names.js';
import { baseHeaders, sendError, sendJson } from './respond.js';

// The endpoint part after `/v2/<name>/`; names may contain slashes, so every split is tried.
const TAIL = /^(?:(blobs\/uploads\/?)|blobs\/uploads\/([^/]+)|blobs\/([^/]+)|manifests\/([^/]+)|(tags\/list)|referrers\/([^/]+))$/;

type Handler = (r: RouteRequest) => Promise<void>;

function methodNotAllowed(): never {
  throw new RegistryError(405, 'UNSUPPORTED', 'method not allowed on this endpoint');
}

function pick(method: string, table: Partial<Record<string, Handler>>): Handler {
  return table[method] ?? methodNotAllowed;
}

function route(ctx: RegistryContext, method: string, path: string): { repository: string; handler: Handler } | undefined {
  // The tails have fixed shapes, so at most one split of the path yields a known endpoint (a
  // repository may well have a component called "blobs" or "manifests").
  for (let i = path.indexOf('/', 4); i > 0; i = path.indexOf('/', i + 1)) {
    const m = TAIL.exec(path.slice(i + 1));
    if (!m) continue;
    const repository = path.slice(4, i);
    const [, uploads, uploadId, blobDigest, reference, tagsList, subject] = m;
    let handler: Handler;
    if (uploads !== undefined) handler = pick(method, { POST: (r) => startUpload(ctx, r) });
    else if (uploadId !== undefined) {
      handler = pick(method, {
        GET: (r) => uploadStatus(ctx, r, uploadId),
        PATCH: (r) => patchUpload(ctx, r, uploadId),
        PUT: (r) => finishUpload(ctx, r, uploadId),
        DELETE: (r) => cancelUpload(ctx, r, uploadId),
      });
    } else if (blobDigest !== undefined) {
      handler = pick(method, { GET: (r) => getBlob(ctx, r, blobDigest), HEAD: (r) => getBlob(ctx, r, blobDigest), DELETE: (r) => deleteBlob(ctx, r, blobDigest) });
    } else if (reference !== undefined) {
      handler = pick(method, {
        GET: (r) => getManifest(ctx, r, reference),
        HEAD: (r) => getManifest(ctx, r, reference),
        PUT: (r) => putManifest(ctx, r, reference),
        DELETE: (r) => deleteManifest(ctx, r, reference),
      });
    } else if (subject !== undefined) handler = pick(method, { GET: (r) => listReferrers(ctx, r, subject) });
    else if (tagsList !== undefined) handler = pick(method, { GET: (r) => listTags(ctx, r) });
    else continue;
    return { repository, handler };
  }
  return undefined;
}

export interface RequestHandlerOptions {
  auth?: Authenticator;
}

export function createRequestHandler(ctx: RegistryContext, options: RequestHandlerOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    baseHeaders(res);
    try {
      if (options.auth && !(await options.auth.check(req.headers.authorization))) {
        throw new RegistryError(401, 'UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': options.auth.challenge } });
      }
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const path = q < 0 ? raw : raw.slice(0, q);
      const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
      const method = req.method ?? 'GET';

      if (path === '/v2/' || path === '/v2') {
        if (method !== 'GET' && method !== 'HEAD') methodNotAllowed();
        sendJson(req, res, 200, {});
        return;
      }
      if (path === '/v2/_catalog') {
        if (method !== 'GET') methodNotAllowed();
        await listCatalog(ctx, { req, res, repository: '', query });
        return;
      }
      if (!path.startsWith('/v2/')) throw new RegistryError(404, 'UNSUPPORTED', 'not a registry endpoint');
      const found = route(ctx, method, path);
      if (!found) throw new RegistryError(404, 'UNSUPPORTED', 'not a registry endpoint');
      if (!isRepositoryName(found.repository)) {
        throw new RegistryError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(found.repository)}`);
      }
      await found.handler({ req, res, repository: found.repository, query });
    } catch (err) {
      respondWithError(ctx, req, res, err);
    }
  };
}

const GONE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/** The client hung up mid-request: nothing to answer, and nothing wrong with the registry. */
function clientWentAway(req: IncomingMessage, res: ServerResponse, err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return req.readableAborted || req.socket.destroyed || res.destroyed || (typeof code === 'string' && GONE_CODES.has(code));
}

function respondWithError(ctx: RegistryContext, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  let error: RegistryError;
  if (err instanceof RegistryError) error = err;
  else if (isDiskFull(err)) {
    const full = err instanceof StorageFullError ? err : storageFullFrom(ctx, err);
    ctx.storageFull(full);
    error = new RegistryError(500, 'UNKNOWN', 'registry storage is full (no space left on device); nothing was stored');
  } else if (clientWentAway(req, res, err)) {
    ctx.log.debug(`${req.method ?? '?'} ${req.url ?? ''}: client went away mid-request (${(err as Error)?.message ?? String(err)})`);
    res.destroy();
    return;
  } else {
    ctx.log.error(err);
    error = new RegistryError(500, 'UNKNOWN', 'internal registry error');
  }
  if (res.headersSent || res.destroyed) {
    // Too late for an error body (e.g. a blob stream broke mid-way): cut the connection.
    res.destroy();
    return;
  }
  settleUnreadBody(req, res);
  sendError(req, res, error);
}

/** An ENOSPC from a small write (a manifest, a tag, a link): where it happened, if the error says. */
function storageFullFrom(ctx: RegistryContext, err: unknown): StorageFullError {
  const path = (err as { path?: unknown }).path;
  return new StorageFullError(typeof path === 'string' ? path : ctx.store.root, {}, undefined, { cause: err });
}

/** The most of an unwanted request body read and thrown away so its sender gets the answer. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

/**
 * After an error, the request body may still be on its way: a client that writes its whole body
 * before reading (most do for a manifest) would get a reset instead of the answer if the socket
 * closed under unread bytes. So the rest is read and discarded, up to DRAIN_MAX_BYTES and
 * DRAIN_MAX_MS, and the connection stays usable; a body declared larger than that is not waited
 * for: the answer says Connection: close and the socket goes once it is sent.
 */
function settleUnreadBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.readableEnded || req.destroyed) return;
  const header = req.headers['content-length'];
  if (header !== undefined && /^\d+$/.test(header) && Number(header) > DRAIN_MAX_BYTES) {
    res.setHeader('Connection', 'close');
    res.once('finish', () => req.socket.destroy());
    return;
  }
  let drained = 0;
  const stop = () => req.socket.destroy();
  const timer = setTimeout(stop, DRAIN_MAX_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_MAX_BYTES) stop();
  });
  req.once('close', () => clearTimeout(timer));
  req.once('end', () => clearTimeout(timer));
  req.resume();
}
