// Reading manifests the server is asked to store: which media type they are, whether they are
// well formed, and what they reference (blobs, child manifests, a subject). The bytes themselves
// are stored exactly as received; this only decides whether to accept them.
import { RegistryError } from './errors.js';
import { parseDigest, type ParsedDigest } from './names.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);
export const SUPPORTED_MANIFEST_TYPES: readonly string[] = [...MANIFEST_TYPES, ...INDEX_TYPES];

/** Manifests are small; this is the spec's suggested minimum a registry must accept. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: ParsedDigest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ParsedManifest {
  kind: 'manifest' | 'index';
  mediaType: string;
  /** Blobs that must already be in the repository (config, layers); foreign layers are left out. */
  blobs: Descriptor[];
  /** Every blob digest the manifest names, foreign layers included (what gc must keep). */
  allBlobs: ParsedDigest[];
  /** Child manifests of an index; they must already be in the repository. */
  children: Descriptor[];
  subject?: Descriptor;
  /** The value the referrers API reports: artifactType, else the config's media type. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string): RegistryError {
  return new RegistryError(400, 'MANIFEST_INVALID', `manifest invalid: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw invalid(`${where}.annotations must map strings to strings`);
  }
  return value as Record<string, string>;
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, artifactType, urls, data } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}.mediaType must be a string`);
  if (typeof digest !== 'string') throw invalid(`${where}.digest must be a string`);
  const parsed = parseDigest(digest);
  if (!parsed) throw invalid(`${where}.digest ${JSON.stringify(digest)} is not a sha256 or sha512 digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
  if (urls !== undefined && !(Array.isArray(urls) && urls.every((u) => typeof u === 'string'))) throw invalid(`${where}.urls must be strings`);
  if (data !== undefined && typeof data !== 'string') throw invalid(`${where}.data must be base64 text`);
  const out: Descriptor = { mediaType, digest: parsed, size };
  if (artifactType !== undefined) out.artifactType = artifactType as string;
  const annotations = stringMap(value.annotations, where);
  if (annotations) out.annotations = annotations;
  if (urls !== undefined) out.urls = urls as string[];
  return out;
}

/** Layers a registry is not expected to hold: OCI non-distributable and Docker foreign layers. */
function isForeign(d: Descriptor): boolean {
  return /nondistributable|foreign/.test(d.mediaType);
}

/** Strip parameters (`; charset=…`) and case from a Content-Type. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  const bare = contentType?.split(';')[0]?.trim().toLowerCase();
  return bare ? bare : undefined;
}

/**
 * Validate a manifest body. `contentType` is the PUT's Content-Type; when the body also names
 * its mediaType the two must agree (a client that says one thing and sends another is a bug
 * worth a 400 rather than a silently mislabelled manifest).
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw invalid('body is not JSON');
  }
  if (!isObject(json)) throw invalid('body is not a JSON object');
  if (json.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  const bodyType = json.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') throw invalid('mediaType must be a string');
  const headerType = bareMediaType(contentType);
  let mediaType: string | undefined = bodyType as string | undefined;
  if (mediaType === undefined) {
    if (headerType && SUPPORTED_MANIFEST_TYPES.includes(headerType)) mediaType = headerType;
    else if ('manifests' in json) mediaType = MEDIA_TYPES.ociIndex;
    else if ('config' in json) mediaType = MEDIA_TYPES.ociManifest;
  } else if (headerType && SUPPORTED_MANIFEST_TYPES.includes(headerType) && headerType !== mediaType) {
    throw invalid(`Content-Type ${headerType} does not match the body's mediaType ${mediaType}`);
  }
  if (mediaType === undefined || !SUPPORTED_MANIFEST_TYPES.includes(mediaType)) {
    throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType ?? headerType ?? '')}`);
  }

  const annotations = stringMap(json.annotations, 'manifest');
  const subject = json.subject === undefined ? undefined : descriptor(json.subject, 'subject');
  if (json.artifactType !== undefined && typeof json.artifactType !== 'string') throw invalid('artifactType must be a string');
  const declaredArtifactType = json.artifactType as string | undefined;

  if (MANIFEST_TYPES.has(mediaType)) {
    if (!('config' in json)) throw invalid('an image manifest needs a config descriptor');
    const config = descriptor(json.config, 'config');
    if (!Array.isArray(json.layers)) throw invalid('layers must be an array');
    const layers = json.layers.map((l, i) => descriptor(l, `layers[${i}]`));
    const all = [config, ...layers];
    const out: ParsedManifest = {
      kind: 'manifest',
      mediaType,
      blobs: all.filter((d) => !isForeign(d) && !d.urls?.length),
      allBlobs: all.map((d) => d.digest),
      children: [],
      artifactType: declaredArtifactType ?? config.mediaType,
    };
    if (subject) out.subject = subject;
    if (annotations) out.annotations = annotations;
    return out;
  }

  if (!Array.isArray(json.manifests)) throw invalid('manifests must be an array');
  const children = json.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
  const out: ParsedManifest = { kind: 'index', mediaType, blobs: [], allBlobs: [], children };
  if (declaredArtifactType !== undefined) out.artifactType = declaredArtifactType;
  if (subject) out.subject = subject;
  if (annotations) out.annotations = annotations;
  return out;
}

/**
 * What a stored manifest reaches directly, for gc and retention: blobs (config, layers) and
 * manifests (an index's children, a subject). Tolerant: anything unparsable reaches nothing.
 */
export function referencedDigests(bytes: Uint8Array, mediaType: string | undefined): { blobs: ParsedDigest[]; manifests: ParsedDigest[] } {
  try {
    const parsed = parseManifest(bytes, mediaType);
    const manifests = parsed.children.map((c) => c.digest);
    if (parsed.subject) manifests.push(parsed.subject.digest);
    return { blobs: parsed.allBlobs, manifests };
  } catch {
    return { blobs: [], manifests: [] };
  }
}
