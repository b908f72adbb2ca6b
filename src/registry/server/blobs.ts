// Blob endpoints: GET/HEAD (with Range), DELETE, and the upload flows (monolithic POST+PUT,
// single POST with ?digest=, streamed or chunked PATCH, status GET, cancel, cross-repo mount).
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { RegistryContext, RouteRequest } from './context.js';
import { RegistryError } from './errors.js';
import { appendBody, commitBlob, type UploadHashState } from './ingest.js';
import { isRepositoryName, isUploadId, parseDigest, type ParsedDigest } from './names.js';
import { send, tooLarge } from './respond.js';
import { sendFileRange } from './send-file.js';

function requireDigest(value: string | null | undefined): ParsedDigest {
  const digest = value ? parseDigest(value) : undefined;
  if (!digest) {
    throw new RegistryError(400, 'DIGEST_INVALID', value ? `digest ${JSON.stringify(value)} is not a sha256 or sha512 digest` : 'a digest is required');
  }
  return digest;
}

const blobLocation = (repository: string, digest: string) => `/v2/${repository}/blobs/${digest}`;
const uploadLocation = (repository: string, id: string) => `/v2/${repository}/blobs/uploads/${id}`;
/** `Range: 0-<last byte>`; "0-0" for an empty upload, as distribution does. */
const rangeHeader = (size: number) => `0-${Math.max(0, size - 1)}`;

type ByteRange = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; multi-range requests get the whole blob. */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return 'unsatisfiable';
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || (b !== '' && Number(b) < start)) return 'unsatisfiable';
  return { start, end };
}

export async function getBlob(ctx: RegistryContext, r: RouteRequest, digestText: string): Promise<void> {
  const digest = requireDigest(digestText);
  const blob = (await ctx.store.repositoryHasBlob(r.repository, digest)) ? await ctx.store.statBlob(digest) : undefined;
  if (!blob) throw new RegistryError(404, 'BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest: digest.digest } });
  if (r.req.method === 'HEAD') await ctx.store.touchBlob(digest);
  const headers: Record<string, string> = {
    'Docker-Content-Digest': digest.digest,
    'Content-Type': 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    ETag: `"${digest.digest}"`,
  };
  const range = parseRange(r.req.headers.range, blob.size);
  if (range === 'unsatisfiable') {
    throw new RegistryError(416, 'SIZE_INVALID', 'requested range not satisfiable', { headers: { 'Content-Range': `bytes */${blob.size}` } });
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? blob.size - 1;
  const length = blob.size === 0 ? 0 : end - start + 1;
  for (const [k, v] of Object.entries(headers)) r.res.setHeader(k, v);
  r.res.setHeader('Content-Length', String(length));
  if (range) r.res.setHeader('Content-Range', `bytes ${start}-${end}/${blob.size}`);
  r.res.writeHead(range ? 206 : 200);
  if (r.req.method === 'HEAD' || length === 0) {
    r.res.end();
    return;
  }
  await sendFileRange(r.res, blob.path, start, length, ctx.readBuffers);
}

export async function deleteBlob(ctx: RegistryContext, r: RouteRequest, digestText: string): Promise<void> {
  const digest = requireDigest(digestText);
  // Only the repository's link goes; the bytes stay until gc finds nothing else reaching them.
  if (!(await ctx.store.unlinkBlob(r.repository, digest))) {
    throw new RegistryError(404, 'BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest: digest.digest } });
  }
  send(r.req, r.res, 202);
}

function checkDeclaredLength(ctx: RegistryContext, r: RouteRequest, already: number): void {
  const declared = Number(r.req.headers['content-length']);
  if (Number.isFinite(declared) && already + declared > ctx.maxBlobBytes) {
    throw tooLarge('blob', ctx.maxBlobBytes);
  }
}

export async function startUpload(ctx: RegistryContext, r: RouteRequest): Promise<void> {
  const { store } = ctx;
  const mount = r.query.get('mount');
  if (mount !== null) {
    const digest = parseDigest(mount);
    const from = r.query.get('from');
    if (digest && (from === null || isRepositoryName(from))) {
      // Without `from` any repository's copy will do: every repository here is open to the caller.
      const available = from === null ? (await store.statBlob(digest)) !== undefined : await store.repositoryHasBlob(from, digest);
      if (available) {
        await store.touchBlob(digest);
        await store.linkBlob(r.repository, digest);
        send(r.req, r.res, 201, { Location: blobLocation(r.repository, digest.digest), 'Docker-Content-Digest': digest.digest });
        return;
      }
    }
    // Fall through: a normal upload session, as the spec asks when the mount can't happen.
  }

  const digestParam = r.query.get('digest');
  if (digestParam !== null) {
    const digest = requireDigest(digestParam);
    checkDeclaredLength(ctx, r, 0);
    const id = await store.createUpload(r.repository);
    try {
      const state: UploadHashState = { hash: createHash('sha256'), offset: 0 };
      await appendBody(r.req, store.uploadDataPath(id), 0, { maxBytes: ctx.maxBlobBytes, state });
      await commitBlob(store, r.repository, store.uploadDataPath(id), digest, state);
      ctx.storageWorks();
    } finally {
      await store.deleteUpload(id);
    }
    send(r.req, r.res, 201, { Location: blobLocation(r.repository, digest.digest), 'Docker-Content-Digest': digest.digest });
    return;
  }

  const id = await store.createUpload(r.repository);
  ctx.uploads.set(id, { hash: createHash('sha256'), offset: 0 });
  r.req.resume();
  send(r.req, r.res, 202, { Location: uploadLocation(r.repository, id), Range: '0-0', 'Docker-Upload-UUID': id });
}

async function openUpload(ctx: RegistryContext, r: RouteRequest, id: string): Promise<{ dataPath: string; size: number }> {
  const meta = isUploadId(id) ? await ctx.store.readUpload(id) : undefined;
  if (!meta || meta.repository !== r.repository) {
    throw new RegistryError(404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { detail: { id } });
  }
  const dataPath = ctx.store.uploadDataPath(id);
  const size = (await stat(dataPath).catch(() => undefined))?.size;
  if (size === undefined) throw new RegistryError(404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { detail: { id } });
  return { dataPath, size };
}

/** The in-memory hash of an upload if it still matches the file (e.g. not after a restart). */
function hashState(ctx: RegistryContext, id: string, size: number): UploadHashState | undefined {
  const state = ctx.uploads.get(id);
  if (state && state.offset === size) return state;
  ctx.uploads.delete(id);
  return undefined;
}

/** Check a chunk's Content-Range (`<start>-<end>`, inclusive) against the bytes received so far. */
function checkContentRange(r: RouteRequest, id: string, size: number): void {
  const header = r.req.headers['content-range'];
  if (header === undefined) return;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(header.trim());
  const declared = Number(r.req.headers['content-length']);
  const ok =
    m !== null &&
    Number(m[1]) === size &&
    Number(m[2]) >= Number(m[1]) &&
    (!Number.isFinite(declared) || Number(m[2]) - Number(m[1]) + 1 === declared);
  if (!ok) {
    throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', `chunk range ${header} does not continue the upload at byte ${size}`, {
      headers: { Location: uploadLocation(r.repository, id), Range: rangeHeader(size), 'Docker-Upload-UUID': id },
    });
  }
}

export async function uploadStatus(ctx: RegistryContext, r: RouteRequest, id: string): Promise<void> {
  const { size } = await openUpload(ctx, r, id);
  send(r.req, r.res, 204, { Location: uploadLocation(r.repository, id), Range: rangeHeader(size), 'Docker-Upload-UUID': id });
}

export async function patchUpload(ctx: RegistryContext, r: RouteRequest, id: string): Promise<void> {
  await ctx.withLock(`upload:${id}`, async () => {
    const { dataPath, size } = await openUpload(ctx, r, id);
    checkContentRange(r, id, size);
    checkDeclaredLength(ctx, r, size);
    const state = hashState(ctx, id, size);
    const newSize = await appendBody(r.req, dataPath, size, { maxBytes: ctx.maxBlobBytes, ...(state ? { state } : {}) });
    send(r.req, r.res, 202, { Location: uploadLocation(r.repository, id), Range: rangeHeader(newSize), 'Docker-Upload-UUID': id });
  });
}

export async function finishUpload(ctx: RegistryContext, r: RouteRequest, id: string): Promise<void> {
  await ctx.withLock(`upload:${id}`, async () => {
    const { dataPath, size } = await openUpload(ctx, r, id);
    const digest = requireDigest(r.query.get('digest'));
    checkContentRange(r, id, size);
    checkDeclaredLength(ctx, r, size);
    const state = hashState(ctx, id, size);
    await appendBody(r.req, dataPath, size, { maxBytes: ctx.maxBlobBytes, ...(state ? { state } : {}) });
    try {
      await commitBlob(ctx.store, r.repository, dataPath, digest, state);
      ctx.storageWorks();
    } finally {
      // Committed or refused for a wrong digest, the session is over either way.
      ctx.uploads.delete(id);
      await ctx.store.deleteUpload(id);
    }
    send(r.req, r.res, 201, { Location: blobLocation(r.repository, digest.digest), 'Docker-Content-Digest': digest.digest });
  });
}

export async function cancelUpload(ctx: RegistryContext, r: RouteRequest, id: string): Promise<void> {
  await ctx.withLock(`upload:${id}`, async () => {
    await openUpload(ctx, r, id);
    ctx.uploads.delete(id);
    await ctx.store.deleteUpload(id);
    send(r.req, r.res, 204);
  });
}
