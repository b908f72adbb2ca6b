// The OCI model as plain values: descriptors, manifests, configs, and an Image that holds the
// exact bytes of its manifest and config (so digests are computed once, never re-serialised).
import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ManifestJson {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface IndexJson {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  [key: string]: unknown;
}

export interface ImageConfigJson {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

/** A repository of a registry, where a base layer's bytes already are. */
export interface BlobOrigin {
  registry: string;
  repository: string;
}

/**
 * A layer as a value (ggcr's v1.Layer): its digests and size are known without its bytes, which
 * it opens itself — from memory for the layers tsko writes, from the registry for a base's — so
 * no writer (registry push, OCI layout, tarball, the local target's unpack) needs to know where
 * they live. `open` gives a fresh stream each call: a retried upload opens it again.
 */
export interface Layer {
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
  /** Set for a base's layers: a push to the same registry mounts them from here instead of uploading. */
  origin?: BlobOrigin;
  /**
   * Set for the layers tsko writes to disk: the file holding exactly the `digest` bytes. A registry
   * in this same process takes the file by hard link instead of receiving its bytes over HTTP.
   */
  path?: string;
  /**
   * Set when every entry of the layer is a file or directory on this machine: what the layer
   * holds, in order, so the local target can link the files into a rootfs instead of extracting
   * the tar. The files are private snapshots (nothing rewrites them), so the rootfs runs the very
   * bytes the layer holds.
   */
  files?: readonly LayerFile[];
  open(signal?: AbortSignal): Promise<Readable>;
}

/** One entry of a layer whose content is a file on this machine (see Layer.files). */
export interface LayerFile {
  /** Path inside the image, without a leading slash (`ko-app/hello`). */
  name: string;
  type: 'directory' | 'file';
  mode: number;
  /** For a file: where its content is on this machine. */
  source?: string;
}

export interface Image {
  manifestMediaType: string;
  manifestBytes: Buffer;
  manifestDigest: Digest;
  configBytes: Buffer;
  configDigest: Digest;
  config: ImageConfigJson;
  layers: Layer[];
  platform: Platform;
}

/**
 * An image as a revision runs it, which may be before its top layer is packed: the local target
 * starts a revision from this while the binary's layer is still being tarred and hashed. `lower`
 * are the layers under the top one, as the image has them; `top` is the top layer, or only its
 * entries as files on this machine (its digest not known yet).
 */
export interface RunnableImage {
  /** The platform and the container config (entrypoint, env, user…) the image will have. */
  config: Pick<ImageConfigJson, 'os' | 'architecture' | 'variant' | 'config'>;
  lower: readonly Layer[];
  top: Layer | { files: readonly LayerFile[] } | undefined;
}

/** A resolved base image for one platform: what app layers are appended to. */
export interface BaseImage {
  /** The reference as configured (`cgr.dev/chainguard/static:latest`, `builtin://static`). */
  name: string;
  /** Digest of this platform's manifest, for the image's base.digest annotation. */
  digest: Digest;
  /** Digest of the index the manifest was picked from, when the base is multi-platform (the index's annotation). */
  indexDigest?: Digest;
  manifestMediaType: string;
  config: ImageConfigJson;
  layers: Layer[];
}
