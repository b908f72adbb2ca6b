// Manifest and tag operations of the distribution spec over the registry transport: HEAD (to skip
// a push), GET, PUT, the tag list, and the `GET /v2/` login check. Each checks the digest the
// registry claims against the bytes, so a registry that rewrites a manifest is not trusted.
import { TskoError } from '../errors.js';
import { MANIFEST_ACCEPT } from '../image/media-types.js';
import { repositoryScope } from './auth.js';
import { MAX_MANIFEST_BYTES, type Response, discard, embeddedMediaType, header, httpError, readBody, sha256 } from './http.js';
import { type Reference, type Repository, formatReference, formatRepository } from './reference.js';
import type { RegistryTransport } from './transport.js';

export interface ManifestInfo {
  digest: string;
  mediaType: string;
  size: number;
}

export interface FetchedManifest extends ManifestInfo {
  bytes: Buffer;
}

function manifestPath(ref: Reference): string {
  const reference = ref.digest ?? ref.tag;
  if (reference === undefined) throw new TskoError('REFERENCE', `${formatReference(ref)} has neither tag nor digest`);
  return `/v2/${ref.repository}/manifests/${reference}`;
}

function requestManifest(transport: RegistryTransport, method: 'HEAD' | 'GET', ref: Reference, operation: string, signal: AbortSignal | undefined): Promise<Response> {
  return transport.send({
    registry: ref.registry,
    method,
    target: manifestPath(ref),
    headers: { accept: MANIFEST_ACCEPT.join(', ') },
    scopes: [repositoryScope(ref.repository, ['pull'])],
    operation,
    signal,
  });
}

/** What a HEAD says; undefined when it leaves something out (Docker-Content-Digest is optional). */
function headInfo(res: Response, ref: Reference): ManifestInfo | undefined {
  const digest = header(res, 'docker-content-digest') ?? ref.digest;
  const mediaType = header(res, 'content-type');
  const size = Number(header(res, 'content-length'));
  if (digest === undefined || mediaType === undefined || !Number.isFinite(size)) return undefined;
  return { digest, mediaType: mediaType.split(';')[0]!.trim(), size };
}

/** Digest, media type and size of a manifest, or undefined when the registry has none. */
export async function headManifest(transport: RegistryTransport, ref: Reference, signal?: AbortSignal): Promise<ManifestInfo | undefined> {
  const operation = `HEAD manifest ${formatReference(ref)}`;
  const info = await transport.retrying(operation, signal, async () => {
    const res = await requestManifest(transport, 'HEAD', ref, operation, signal);
    // ggcr treats 403 like 404 here: some registries (JFrog) answer 403 for a missing manifest.
    if (res.status === 404 || res.status === 403) {
      await discard(res);
      return null;
    }
    if (res.status !== 200) throw await httpError(res, operation, ref.registry);
    await discard(res);
    return headInfo(res, ref);
  });
  if (info === null) return undefined;
  if (info !== undefined) {
    if (ref.digest !== undefined && info.digest !== ref.digest) {
      throw new TskoError('REGISTRY_DIGEST', `${ref.registry} answered ${operation} with digest ${info.digest}`);
    }
    return info;
  }
  // The HEAD did not say it all: the bytes do.
  const fetched = await getManifest(transport, ref, signal);
  return { digest: fetched.digest, mediaType: fetched.mediaType, size: fetched.size };
}

/** The media type from Content-Type, or from the manifest itself when the registry sent a generic one. */
function manifestMediaType(res: Response, bytes: Buffer): string {
  const mediaType = header(res, 'content-type')?.split(';')[0]?.trim() ?? '';
  if (mediaType === '' || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    return embeddedMediaType(bytes) ?? mediaType;
  }
  return mediaType;
}

export async function getManifest(transport: RegistryTransport, ref: Reference, signal?: AbortSignal): Promise<FetchedManifest> {
  const operation = `GET manifest ${formatReference(ref)}`;
  return transport.retrying(operation, signal, async () => {
    const res = await requestManifest(transport, 'GET', ref, operation, signal);
    if (res.status !== 200) throw await httpError(res, operation, ref.registry);
    const bytes = await readBody(res, MAX_MANIFEST_BYTES, operation, ref.registry, signal);
    const digest = sha256(bytes);
    if (ref.digest !== undefined && digest !== ref.digest) {
      throw new TskoError('REGISTRY_DIGEST', `${operation}: content has digest ${digest}, not the one asked for`);
    }
    const claimed = header(res, 'docker-content-digest');
    if (claimed !== undefined && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new TskoError('REGISTRY_DIGEST', `${operation}: ${ref.registry} says ${claimed} but the content has digest ${digest}`);
    }
    return { digest, mediaType: manifestMediaType(res, bytes), size: bytes.length, bytes };
  });
}

/** Stores a manifest under the reference's tag (or its digest); returns the digest. */
export async function putManifest(transport: RegistryTransport, ref: Reference, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
  const digest = sha256(bytes);
  if (ref.digest !== undefined && ref.digest !== digest) {
    throw new TskoError('REGISTRY_DIGEST', `manifest for ${formatReference(ref)} has digest ${digest}, not the one in the reference`);
  }
  const operation = `PUT manifest ${formatReference(ref)}`;
  await transport.retrying(operation, signal, async () => {
    const res = await transport.send({
      registry: ref.registry,
      method: 'PUT',
      target: `/v2/${ref.repository}/manifests/${ref.tag ?? digest}`,
      headers: { 'content-type': mediaType },
      body: () => bytes,
      scopes: [repositoryScope(ref.repository, ['pull', 'push'])],
      operation,
      signal,
    });
    if (res.status !== 201 && res.status !== 200) throw await httpError(res, operation, ref.registry);
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

interface TagPage {
  list: string[];
  next: URL | undefined;
}

async function tagPage(transport: RegistryTransport, repo: Repository, target: string | URL, operation: string, signal: AbortSignal | undefined): Promise<TagPage> {
  const res = await transport.send({ registry: repo.registry, method: 'GET', target, scopes: [repositoryScope(repo.repository, ['pull'])], operation, signal });
  if (res.status === 404) {
    await discard(res);
    return { list: [], next: undefined };
  }
  if (res.status !== 200) throw await httpError(res, operation, repo.registry);
  const json = JSON.parse((await readBody(res, MAX_MANIFEST_BYTES, operation, repo.registry, signal)).toString('utf8')) as { tags?: unknown };
  const list = Array.isArray(json.tags) ? json.tags.filter((t): t is string => typeof t === 'string') : [];
  const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
  return { list, next: link?.[1] !== undefined ? new URL(link[1], res.url) : undefined };
}

/** Every tag, following the Link header's pages; none for an unknown repository. */
export async function listTags(transport: RegistryTransport, repo: Repository, signal?: AbortSignal): Promise<string[]> {
  const operation = `GET tags ${formatRepository(repo)}`;
  const tags: string[] = [];
  let target: string | URL = `/v2/${repo.repository}/tags/list`;
  for (let page = 0; page < 1000; page++) {
    const current: string | URL = target;
    const { list, next }: TagPage = await transport.retrying(operation, signal, () => tagPage(transport, repo, current, operation, signal));
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
export async function checkAuth(transport: RegistryTransport, registry: string, signal?: AbortSignal): Promise<void> {
  const operation = `GET /v2/ of ${registry}`;
  await transport.retrying(operation, signal, async () => {
    const res = await transport.send({ registry, method: 'GET', target: '/v2/', scopes: [], operation, signal });
    if (res.status !== 200) throw await httpError(res, operation, registry);
    await discard(res);
  });
}
