// Where a dev-loop iteration (or `tsko deploy`) sends a pushed image: the local target runs it on
// this machine; Kubernetes and Cloud Run targets roll it out remotely. One interface, so the loop
// does not know which it drives.
import type { EventBus } from '../events.js';
import type { LayerBytes } from '../image/layout.js';
import type { Image } from '../image/types.js';

export interface DeployRequest {
  /** The service name (the import path's base name), e.g. `hello`. */
  service: string;
  /** The dev loop's iteration number (1 for a one-shot deploy). */
  iteration: number;
  /** The pushed image by digest: `registry/repo@sha256:…`. */
  reference: string;
  /** The Go import path the image was built from (resolves `ko://` references in manifests). */
  importPath?: string;
  /** The image value itself, so a local target need not pull what it just built. */
  image: Image;
  /** Reads a layer's compressed bytes (from memory, or from the registry it lives in). */
  layerBytes: LayerBytes;
  /** Events carry service and iteration already. */
  events: EventBus;
  /** Aborted when a newer save supersedes this iteration, or on shutdown. */
  signal: AbortSignal;
}

export interface DeployResult {
  /** The new revision's name, e.g. `hello-00003`. */
  revision: string;
  /** Where the service answers now. */
  url?: string;
}

export interface Target {
  readonly kind: 'local' | 'kubernetes' | 'cloudrun';
  /**
   * Rolls the image out and resolves once the new revision is serving. On failure it throws a
   * TskoError and leaves the previous revision serving.
   */
  deploy(request: DeployRequest): Promise<DeployResult>;
  /** Stops what the target started (local revisions, proxies); idempotent. */
  close(): Promise<void>;
}
