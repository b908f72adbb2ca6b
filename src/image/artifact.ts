// An OCI 1.1 artifact as a value: an image manifest whose one layer is a file (an SBOM), with the
// empty config and `artifactType` the artifact guidance prescribes, and a `subject` naming the
// image it describes, so registries with the referrers API list it under that image. Pure.
import { sha256, type Digest } from './digest.js';
import { OCI_MANIFEST } from './media-types.js';
import type { Descriptor, ManifestJson } from './types.js';

export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const EMPTY_JSON = Buffer.from('{}');

export interface ArtifactBlob {
  digest: Digest;
  data: Buffer;
}

export interface Artifact {
  mediaType: string;
  artifactType: string;
  bytes: Buffer;
  digest: Digest;
  json: ManifestJson;
  /** Everything the manifest references besides the subject: the empty config and the file. */
  blobs: ArtifactBlob[];
}

export interface ArtifactOptions {
  /** The file's media type, also the artifactType (e.g. text/spdx+json). */
  mediaType: string;
  data: Buffer;
  subject: Descriptor;
  annotations?: Record<string, string>;
}

export function fileArtifact(options: ArtifactOptions): Artifact {
  const configDigest = sha256(EMPTY_JSON);
  const fileDigest = sha256(options.data);
  const json: ManifestJson = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: options.mediaType,
    config: { mediaType: OCI_EMPTY, digest: configDigest, size: EMPTY_JSON.length },
    layers: [{ mediaType: options.mediaType, digest: fileDigest, size: options.data.length }],
    subject: { mediaType: options.subject.mediaType, digest: options.subject.digest, size: options.subject.size },
    ...(options.annotations && Object.keys(options.annotations).length > 0 ? { annotations: options.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(json));
  return {
    mediaType: OCI_MANIFEST,
    artifactType: options.mediaType,
    bytes,
    digest: sha256(bytes),
    json,
    blobs: [
      { digest: configDigest, data: EMPTY_JSON },
      { digest: fileDigest, data: options.data },
    ],
  };
}

/** ko's (cosign's) tag for an attachment of an image: `sha256-<hex>.<suffix>`. */
export function attachmentTag(subject: string, suffix: string): string {
  return `${subject.replace(':', '-')}.${suffix}`;
}
