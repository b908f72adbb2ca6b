// Turns a base image plus tsko's two app layers (kodata, then the Go binary) into a new image
// laid out as ko lays it out: entrypoint /ko-app/<name>, /ko-app on PATH, KO_DATA_PATH, history
// entries, diff_ids, base annotations. Pure: the same inputs give the same bytes and digests.
import { sha256 } from './digest.js';
import { familyOf, MEDIA_TYPES, OCI_LAYER, OCI_LAYER_ZSTD } from './media-types.js';
import type { BaseImage, ContainerConfig, Image, ImageConfigJson, Layer, ManifestJson, Platform, RunnableImage } from './types.js';

export const KO_APP_DIR = '/ko-app';
export const KODATA_ROOT = '/var/run/ko';

export interface AppImageOptions {
  importPath: string;
  /** Name of the binary under /ko-app. */
  appName: string;
  platform: Platform;
  kodataLayer: Layer;
  binaryLayer: Layer;
  /** RFC 3339 creation time (from SOURCE_DATE_EPOCH, else the epoch). */
  created: string;
  user?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function appendAppLayers(base: BaseImage, options: AppImageOptions): Image {
  const family = familyOf(base.manifestMediaType);
  const types = MEDIA_TYPES[family];
  // Base layers keep their own media type; our gzip layers take the base family's gzip type (a
  // plain-tar or zstd layer, written only for OCI bases, keeps its own).
  const ours = [options.kodataLayer, options.binaryLayer].map((layer) =>
    layer.mediaType === OCI_LAYER || layer.mediaType === OCI_LAYER_ZSTD ? layer : { ...layer, mediaType: types.layer },
  );
  const layers = [...base.layers, ...ours];

  const config = appConfig(base.config, options, ours);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256(configBytes);

  const manifest: ManifestJson = {
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, digest: configDigest, size: configBytes.length },
    layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size })),
    annotations: {
      'org.opencontainers.image.base.name': base.name,
      'org.opencontainers.image.base.digest': base.digest,
      ...options.annotations,
    },
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return {
    manifestMediaType: types.manifest,
    manifestBytes,
    manifestDigest: sha256(manifestBytes),
    configBytes,
    configDigest,
    config,
    layers,
    platform: options.platform,
  };
}

/** What runs: the base's container config with ko's entrypoint, PATH and KO_DATA_PATH, the user and labels. */
export function appContainerConfig(baseConfig: ImageConfigJson, options: Pick<AppImageOptions, 'appName' | 'user' | 'labels'>): ContainerConfig {
  const container = { ...structuredClone(baseConfig.config) };
  container.Entrypoint = [`${KO_APP_DIR}/${options.appName}`];
  delete container.Cmd;
  container.Env = withAppEnv(container.Env ?? []);
  if (options.user !== undefined) container.User = options.user;
  if (options.labels && Object.keys(options.labels).length > 0) container.Labels = { ...container.Labels, ...options.labels };
  return container;
}

function appConfig(baseConfig: ImageConfigJson, options: AppImageOptions, ours: Layer[]): ImageConfigJson {
  const base = structuredClone(baseConfig);
  const container = appContainerConfig(baseConfig, options);
  const appPath = `${KO_APP_DIR}/${options.appName}`;

  const history = (base.history ?? []).slice();
  const createdBy = `tsko build ko://${options.importPath}`;
  history.push(
    { author: 'tsko', created: options.created, created_by: createdBy, comment: 'kodata contents, at $KO_DATA_PATH' },
    { author: 'tsko', created: options.created, created_by: createdBy, comment: `go build output, at ${appPath}` },
  );

  const config: ImageConfigJson = {
    ...base,
    created: options.created,
    author: 'tsko',
    architecture: options.platform.architecture,
    os: options.platform.os,
    config: container,
    rootfs: { type: 'layers', diff_ids: [...base.rootfs.diff_ids, ...ours.map((layer) => layer.diffId)] },
    history,
  };
  if (options.platform.variant) config.variant = options.platform.variant;
  else delete config.variant;
  return config;
}

/** /ko-app appended to PATH (or PATH=/ko-app), and KO_DATA_PATH set, as ko does. */
function withAppEnv(env: string[]): string[] {
  const out: string[] = [];
  let sawPath = false;
  for (const entry of env) {
    if (entry.startsWith('PATH=')) {
      sawPath = true;
      out.push(`${entry}:${KO_APP_DIR}`);
    } else if (!entry.startsWith('KO_DATA_PATH=')) {
      out.push(entry);
    }
  }
  if (!sawPath) out.push(`PATH=${KO_APP_DIR}`);
  out.push(`KO_DATA_PATH=${KODATA_ROOT}`);
  return out;
}

/** A built image as a revision runs it. */
export function runnableOf(image: Image): RunnableImage {
  return { config: image.config, lower: image.layers.slice(0, -1), top: image.layers.at(-1) };
}

/** Creation time from SOURCE_DATE_EPOCH (seconds), else the Unix epoch: reproducible either way. */
export function createdFromEpoch(sourceDateEpoch: string | undefined): string {
  const seconds = sourceDateEpoch === undefined || sourceDateEpoch === '' ? 0 : Number(sourceDateEpoch);
  if (!Number.isInteger(seconds) || seconds < 0) throw new RangeError(`SOURCE_DATE_EPOCH must be a whole number of seconds, got "${sourceDateEpoch}"`);
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}
