// A multi-platform image as a value: the OCI image index (or Docker manifest list, following the
// children's family, as ko keeps the base's media type) over per-platform images, in the order
// they are given. Pure: the same children give the same bytes and digest.
import { sha256, type Digest } from './digest.js';
import { familyOf, MEDIA_TYPES } from './media-types.js';
import type { Descriptor, Image, IndexJson, Platform } from './types.js';

export const BASE_NAME_ANNOTATION = 'org.opencontainers.image.base.name';
export const BASE_DIGEST_ANNOTATION = 'org.opencontainers.image.base.digest';

export interface ImageIndex {
  mediaType: string;
  bytes: Buffer;
  digest: Digest;
  json: IndexJson;
  children: Image[];
}

export interface IndexOptions {
  /** The base the children were built on, for ko's base annotations on the index. */
  base?: { name: string; digest: string };
  /** --image-annotation values, set on the index as ko sets them on every manifest. */
  annotations?: Record<string, string>;
}

export function buildIndex(children: readonly Image[], options: IndexOptions = {}): ImageIndex {
  const first = children[0];
  if (!first) throw new RangeError('an image index needs at least one image');
  const family = familyOf(first.manifestMediaType);
  const mixed = children.find((child) => familyOf(child.manifestMediaType) !== family);
  if (mixed) throw new RangeError(`cannot index ${mixed.manifestMediaType} beside ${first.manifestMediaType}`);
  const seen = new Set<string>();
  for (const child of children) {
    const key = platformKey(child.platform);
    if (seen.has(key)) throw new RangeError(`two images for platform ${key}`);
    seen.add(key);
  }

  const mediaType = MEDIA_TYPES[family].index;
  const manifests: Descriptor[] = children.map((child) => ({
    mediaType: child.manifestMediaType,
    digest: child.manifestDigest,
    size: child.manifestBytes.length,
    platform: descriptorPlatform(child.platform),
  }));
  const json: IndexJson = { schemaVersion: 2, mediaType, manifests };
  // The Docker manifest list schema has no annotations; registries that validate it strictly
  // would refuse them, so only an OCI index carries them.
  if (family === 'oci') {
    const annotations: Record<string, string> = {
      ...(options.base ? { [BASE_NAME_ANNOTATION]: options.base.name, [BASE_DIGEST_ANNOTATION]: options.base.digest } : {}),
      ...options.annotations,
    };
    if (Object.keys(annotations).length > 0) json.annotations = annotations;
  }
  const bytes = Buffer.from(JSON.stringify(json));
  return { mediaType, bytes, digest: sha256(bytes), json, children: [...children] };
}

/** A platform with only the fields a descriptor carries, in a stable key order. */
function descriptorPlatform(platform: Platform): Platform {
  const out: Platform = { architecture: platform.architecture, os: platform.os };
  if (platform['os.version']) out['os.version'] = platform['os.version'];
  if (platform.variant) out.variant = platform.variant;
  return out;
}

function platformKey(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant ?? ''].join('/');
}
