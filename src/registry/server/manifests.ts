// Manifest endpoints (GET/HEAD/PUT/DELETE by tag or digest), the tag list and the referrers API.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { RegistryContext, RouteRequest } from './context.js';
import { RegistryError } from './errors.js';
import { storeBytes } from './ingest.js';
import { MAX_MANIFEST_BYTES, MEDIA_TYPES, parseManifest } from './manifest.js';
import { isTag, parseDigest, type ParsedDigest } from './names.js';
import { accepts, readSmallBody, send, sendJson } from './respond.js';
import type { ManifestRecord } from './store.js';

type Reference = { kind: 'digest'; digest: ParsedDigest } | { kind: 'tag'; tag: string };

/** `forWrite`: an invalid tag is a bad request on PUT, but merely an unknown manifest on reads and deletes. */
function parseReference(reference: string, forWrite = false): Reference {
  if (reference.includes(':')) {
    const digest = parseDigest(reference);
    if (!digest) throw new RegistryError(400, 'DIGEST_INVALID', `digest ${JSON.stringify(reference)} is not a sha256 or sha512 digest`);
    return { kind: 'digest', digest };
  }
  if (!isTag(reference)) {
    if (!forWrite) throw manifestUnknown(reference);
    throw new RegistryError(400, 'MANIFEST_INVALID', `invalid tag ${JSON.stringify(reference)}`);
  }
  return { kind: 'tag', tag: reference };
}

function manifestUnknown(reference: string): RegistryError {
  return new RegistryError(404, 'MANIFEST_UNKNOWN', 'manifest unknown to registry', { detail: { reference } });
}

async function resolve(ctx: RegistryContext, repository: string, reference: string): Promise<ParsedDigest> {
  const ref = parseReference(reference);
  if (ref.kind === 'digest') return ref.digest;
  const target = await ctx.store.resolveTag(repository, ref.tag);
  const digest = target === undefined ? undefined : parseDigest(target);
  if (!digest) {
    if (!(await ctx.store.repositoryExists(repository))) {
      throw new RegistryError(404, 'NAME_UNKNOWN', 'repository name not known to registry', { detail: { name: repository } });
    }
    throw manifestUnknown(reference);
  }
  return digest;
}

export async function getManifest(ctx: RegistryContext, r: RouteRequest, reference: string): Promise<void> {
  const digest = await resolve(ctx, r.repository, reference);
  const record = await ctx.store.readManifestRecord(r.repository, digest);
  const blob = record ? await ctx.store.statBlob(digest) : undefined;
  if (!record || !blob) throw manifestUnknown(reference);
  if (!accepts(r.req.headers.accept, record.mediaType)) {
    throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest is ${record.mediaType}, which the request's Accept header does not list`, {
      detail: { reference, mediaType: record.mediaType },
    });
  }
  const headers = { 'Docker-Content-Digest': digest.digest, ETag: `"${digest.digest}"`, 'Content-Type': record.mediaType };
  if (r.req.method === 'HEAD') {
    r.res.setHeader('Content-Length', String(blob.size));
    for (const [k, v] of Object.entries(headers)) r.res.setHeader(k, v);
    r.res.writeHead(200);
    r.res.end();
    return;
  }
  send(r.req, r.res, 200, headers, await readFile(blob.path));
}

export async function putManifest(ctx: RegistryContext, r: RouteRequest, reference: string): Promise<void> {
  const ref = parseReference(reference, true);
  const tags = r.query.getAll('tag');
  for (const tag of tags) if (!isTag(tag)) throw new RegistryError(400, 'MANIFEST_INVALID', `invalid tag ${JSON.stringify(tag)}`);
  if (ref.kind === 'tag') tags.unshift(ref.tag);

  const bytes = await readSmallBody(r.req, MAX_MANIFEST_BYTES, 'manifest');
  const parsed = parseManifest(bytes, r.req.headers['content-type']);
  const algorithm = ref.kind === 'digest' ? ref.digest.algorithm : 'sha256';
  const hex = createHash(algorithm).update(bytes).digest('hex');
  const digest = parseDigest(`${algorithm}:${hex}`)!;
  if (ref.kind === 'digest' && ref.digest.hex !== hex) {
    throw new RegistryError(400, 'DIGEST_INVALID', 'manifest digest does not match its content', {
      detail: { expected: ref.digest.digest, actual: digest.digest },
    });
  }

  const { store } = ctx;
  for (const blob of parsed.blobs) {
    if (!(await store.repositoryHasBlob(r.repository, blob.digest))) {
      throw new RegistryError(400, 'MANIFEST_BLOB_UNKNOWN', `blob ${blob.digest.digest} is not in repository ${r.repository}`, {
        detail: { digest: blob.digest.digest },
      });
    }
    // Keep gc's grace period from expiring on a blob this manifest is about to reference.
    await store.touchBlob(blob.digest);
  }
  for (const child of parsed.children) {
    if (!(await store.readManifestRecord(r.repository, child.digest)) || !(await store.statBlob(child.digest))) {
      throw new RegistryError(400, 'MANIFEST_BLOB_UNKNOWN', `manifest ${child.digest.digest} is not in repository ${r.repository}`, {
        detail: { digest: child.digest.digest },
      });
    }
    await store.touchBlob(child.digest);
  }

  // Bytes, then the repository's record, then tags: a crash between steps never leaves a tag
  // pointing at a manifest the repository doesn't have.
  await storeBytes(store, digest, bytes);
  const record: ManifestRecord = { digest: digest.digest, mediaType: parsed.mediaType, size: bytes.length, pushedAt: Date.now() };
  if (parsed.artifactType !== undefined) record.artifactType = parsed.artifactType;
  if (parsed.subject) record.subject = parsed.subject.digest.digest;
  if (parsed.annotations) record.annotations = parsed.annotations;
  await store.writeManifestRecord(r.repository, record);
  for (const tag of tags) await ctx.withLock(`tag:${r.repository}:${tag}`, () => store.writeTag(r.repository, tag, digest.digest));
  ctx.storageWorks();

  const headers: Record<string, string | string[]> = {
    Location: `/v2/${r.repository}/manifests/${digest.digest}`,
    'Docker-Content-Digest': digest.digest,
  };
  if (parsed.subject) headers['OCI-Subject'] = parsed.subject.digest.digest;
  if (r.query.getAll('tag').length > 0) headers['OCI-Tag'] = r.query.getAll('tag');
  send(r.req, r.res, 201, headers);
}

export async function deleteManifest(ctx: RegistryContext, r: RouteRequest, reference: string): Promise<void> {
  const ref = parseReference(reference);
  const { store } = ctx;
  if (ref.kind === 'tag') {
    if (!(await store.deleteTag(r.repository, ref.tag))) throw manifestUnknown(reference);
    send(r.req, r.res, 202);
    return;
  }
  if (!(await store.deleteManifestRecord(r.repository, ref.digest))) throw manifestUnknown(reference);
  // Tags must not outlive the manifest they name.
  for (const tag of await store.listTags(r.repository)) {
    if ((await store.resolveTag(r.repository, tag)) === ref.digest.digest) await store.deleteTag(r.repository, tag);
  }
  send(r.req, r.res, 202);
}

/** Apply `n` and `last` to a sorted list; returns the page and whether more follow. */
function paginate(items: string[], query: URLSearchParams): { page: string[]; more: boolean; n?: number } {
  const last = query.get('last');
  let rest = last === null ? items : items.filter((t) => t > last);
  const nText = query.get('n');
  if (nText === null || nText === '') return { page: rest, more: false };
  const n = Number(nText);
  if (!Number.isSafeInteger(n) || n < 0) throw new RegistryError(400, 'UNSUPPORTED', `n=${nText} is not a non-negative integer`);
  const more = rest.length > n;
  rest = rest.slice(0, n);
  return { page: rest, more, n };
}

export async function listTags(ctx: RegistryContext, r: RouteRequest): Promise<void> {
  if (!(await ctx.store.repositoryExists(r.repository))) {
    throw new RegistryError(404, 'NAME_UNKNOWN', 'repository name not known to registry', { detail: { name: r.repository } });
  }
  const tags = (await ctx.store.listTags(r.repository)).sort();
  const { page, more, n } = paginate(tags, r.query);
  const headers: Record<string, string> = {};
  const lastTag = page[page.length - 1];
  if (more && lastTag !== undefined && n !== undefined) {
    headers.Link = `</v2/${r.repository}/tags/list?n=${n}&last=${encodeURIComponent(lastTag)}>; rel="next"`;
  }
  sendJson(r.req, r.res, 200, { name: r.repository, tags: page }, headers);
}

export async function listReferrers(ctx: RegistryContext, r: RouteRequest, digestText: string): Promise<void> {
  const subject = parseDigest(digestText);
  if (!subject) throw new RegistryError(400, 'DIGEST_INVALID', `digest ${JSON.stringify(digestText)} is not a sha256 or sha512 digest`);
  const artifactType = r.query.get('artifactType');
  const records = (await ctx.store.listManifestRecords(r.repository))
    .filter((m) => m.subject === subject.digest)
    .filter((m) => artifactType === null || m.artifactType === artifactType)
    .sort((a, b) => (a.digest < b.digest ? -1 : 1));
  const manifests = records.map((m) => {
    const d: Record<string, unknown> = { mediaType: m.mediaType, digest: m.digest, size: m.size };
    if (m.artifactType !== undefined) d.artifactType = m.artifactType;
    if (m.annotations !== undefined) d.annotations = m.annotations;
    return d;
  });
  const headers: Record<string, string> = {};
  if (artifactType !== null) headers['OCI-Filters-Applied'] = 'artifactType';
  sendJson(r.req, r.res, 200, { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }, headers, MEDIA_TYPES.ociIndex);
}

export async function listCatalog(ctx: RegistryContext, r: RouteRequest): Promise<void> {
  const { page, more, n } = paginate(await ctx.store.listRepositories(), r.query);
  const headers: Record<string, string> = {};
  const lastRepo = page[page.length - 1];
  if (more && lastRepo !== undefined && n !== undefined) headers.Link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(lastRepo)}>; rel="next"`;
  sendJson(r.req, r.res, 200, { repositories: page }, headers);
}
