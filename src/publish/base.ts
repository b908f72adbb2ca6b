// Resolves a base image reference to the image for one platform: `builtin://static` offline, or
// a registry image whose manifests and config are cached on disk by digest, so a tag costs one
// HEAD request and a digest none. Resolved bases are kept in memory for the resolver's life (a
// `tsko dev` run resolves each base once, until refreshed).
import { Readable } from 'node:stream';
import { abortable } from '../abort.js';
import { TskoError, isTskoError } from '../errors.js';
import { platformMatches, formatPlatform } from '../go/platform.js';
import { BUILTIN_STATIC, builtinStaticBase } from '../image/builtin-base.js';
import { sha256, type Digest } from '../image/digest.js';
import { remoteLayer } from '../image/layer.js';
import { isIndexMediaType } from '../image/media-types.js';
import type { BaseImage, ImageConfigJson, IndexJson, ManifestJson, Platform } from '../image/types.js';
import type { RegistryClient } from '../registry/client.js';
import { formatReference, parseReference, type Reference } from '../registry/reference.js';
import { BlobCache } from './blob-cache.js';

export interface BaseResolverOptions {
  client: RegistryClient;
  cacheDir: string;
}

interface ManifestBytes {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

export class BaseResolver {
  private readonly client: RegistryClient;
  private readonly cache: BlobCache;
  private readonly resolved = new Map<string, Promise<BaseImage>>();

  constructor(options: BaseResolverOptions) {
    this.client = options.client;
    this.cache = new BlobCache(options.cacheDir);
  }

  /** Forget resolved bases so the next resolve asks the registry again (dev loop "refresh"). */
  refresh(): void {
    this.resolved.clear();
  }

  /**
   * One resolution per base and platform, shared by every caller: it runs without any one caller's
   * signal (a superseded iteration must not cancel what the next one waits for), and each caller
   * stops waiting at once on its own abort.
   */
  resolve(name: string, platform: Platform, signal?: AbortSignal): Promise<BaseImage> {
    const key = `${name}\u0000${formatPlatform(platform)}`;
    let pending = this.resolved.get(key);
    if (!pending) {
      pending = this.resolveUncached(name, platform);
      this.resolved.set(key, pending);
      pending.catch(() => this.resolved.delete(key));
    }
    return abortable(pending, signal);
  }

  /** The platforms a multi-platform base offers (for `--platform all`), skipping unknown/unknown. */
  async platforms(name: string, signal?: AbortSignal): Promise<Platform[] | undefined> {
    if (name === BUILTIN_STATIC) return undefined;
    const ref = this.parse(name);
    const top = await this.fetchManifest(ref, signal);
    if (!isIndexMediaType(top.mediaType)) return undefined;
    const index = JSON.parse(top.bytes.toString('utf8')) as IndexJson;
    return index.manifests
      .map((m) => m.platform)
      .filter((p): p is Platform => p !== undefined && p.os !== 'unknown' && p.architecture !== 'unknown');
  }

  private parse(name: string): Reference {
    try {
      return parseReference(name, { defaultTag: 'latest' });
    } catch (err) {
      throw new TskoError('BASE_IMAGE', `invalid base image "${name}"`, { cause: err, hint: isTskoError(err) ? err.message : undefined });
    }
  }

  /** Runs for every caller at once, so with no caller's signal (see resolve). */
  private async resolveUncached(name: string, platform: Platform): Promise<BaseImage> {
    if (name === BUILTIN_STATIC) return builtinStaticBase(platform);
    if (name.startsWith('builtin://')) {
      throw new TskoError('BASE_IMAGE', `unknown builtin base "${name}"`, { hint: `the builtin base is ${BUILTIN_STATIC}` });
    }
    const ref = this.parse(name);
    try {
      return await this.resolveRemote(name, ref, platform);
    } catch (err) {
      if (isTskoError(err) && (err.code === 'BASE_IMAGE' || err.code === 'ABORTED')) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      throw new TskoError('BASE_IMAGE', `cannot resolve base image ${name}: ${reason}`, {
        cause: err,
        hint: `set defaultBaseImage: '${BUILTIN_STATIC}' (or KO_DEFAULTBASEIMAGE) to build without network access`,
      });
    }
  }

  private async resolveRemote(name: string, ref: Reference, platform: Platform): Promise<BaseImage> {
    const top = await this.fetchManifest(ref);
    let manifest = top;
    if (isIndexMediaType(top.mediaType)) {
      const index = JSON.parse(top.bytes.toString('utf8')) as IndexJson;
      const child = index.manifests.find((m) => platformMatches(m.platform, platform));
      if (!child) {
        const offered = index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : '?')).join(', ');
        throw new TskoError('BASE_IMAGE', `base image ${name} has no ${formatPlatform(platform)} image`, { hint: `it offers: ${offered}` });
      }
      manifest = await this.fetchManifest({ registry: ref.registry, repository: ref.repository, digest: child.digest });
    }
    const parsed = JSON.parse(manifest.bytes.toString('utf8')) as ManifestJson;
    const configBytes = await this.fetchBlob(ref, parsed.config.digest);
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigJson;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== parsed.layers.length) {
      throw new TskoError('BASE_IMAGE', `base image ${name} is inconsistent: ${parsed.layers.length} layers but ${diffIds.length} diff_ids`);
    }
    return {
      name,
      digest: manifest.digest,
      ...(manifest !== top ? { indexDigest: top.digest } : {}),
      manifestMediaType: manifest.mediaType,
      config,
      layers: parsed.layers.map((layer, i) =>
        remoteLayer(
          { digest: layer.digest as Digest, diffId: diffIds[i] as Digest, size: layer.size, mediaType: layer.mediaType },
          { registry: ref.registry, repository: ref.repository },
          // Every reader wants the whole layer, and a whole download is retried (a stream is not).
          async (origin, digest, signal) => Readable.from([await this.client.getBlob(origin, digest, signal)]),
        ),
      ),
    };
  }

  /** A manifest by tag (one HEAD, then the disk cache) or by digest (the disk cache first). */
  private async fetchManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestBytes> {
    let digest = ref.digest;
    if (!digest) {
      const head = await this.client.headManifest(ref, signal);
      if (head) {
        digest = head.digest;
        await this.cache.putTag(formatReference(ref), head.digest);
      }
    }
    if (digest) {
      const cached = await this.cache.get(digest);
      if (cached) return { digest: digest as Digest, bytes: cached, mediaType: mediaTypeOf(cached) };
    }
    const fetched = await this.client.getManifest(digest ? { ...ref, digest } : ref, signal);
    const actual = sha256(fetched.bytes);
    if (digest && actual !== digest) {
      throw new TskoError('REGISTRY_DIGEST', `${formatReference(ref)}: manifest digest ${actual} does not match ${digest}`);
    }
    await this.cache.put(actual, fetched.bytes);
    return { digest: actual, bytes: fetched.bytes, mediaType: fetched.mediaType || mediaTypeOf(fetched.bytes) };
  }

  private async fetchBlob(ref: Reference, digest: string, signal?: AbortSignal): Promise<Buffer> {
    const cached = await this.cache.get(digest);
    if (cached) return cached;
    const data = await this.client.getBlob({ registry: ref.registry, repository: ref.repository }, digest, signal);
    await this.cache.put(digest, data);
    return data;
  }
}

function mediaTypeOf(bytes: Buffer): string {
  const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
  if (parsed.mediaType) return parsed.mediaType;
  return parsed.manifests ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
}
