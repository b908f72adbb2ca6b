// Media types of the two image formats tsko writes. An image's layers, config and manifest all
// follow its base's family, as ko does: mixing OCI layers into a Docker manifest is rejected by
// some registries and runtimes.
import { TskoError } from '../errors.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
/** OCI only: Docker's schema 2 defines no zstd layer type. */
export const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export const SPDX_JSON = 'text/spdx+json';

export type MediaFamily = 'oci' | 'docker';

export interface FamilyTypes {
  manifest: string;
  index: string;
  config: string;
  layer: string;
}

export const MEDIA_TYPES: Record<MediaFamily, FamilyTypes> = {
  oci: { manifest: OCI_MANIFEST, index: OCI_INDEX, config: OCI_CONFIG, layer: OCI_LAYER_GZIP },
  docker: { manifest: DOCKER_MANIFEST, index: DOCKER_MANIFEST_LIST, config: DOCKER_CONFIG, layer: DOCKER_LAYER_GZIP },
};

/** How tsko's own layers are written: compressed one way or another, or plain tar. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

/**
 * The compression and media type of the app layers on a base of `family`, given what was asked.
 * 'none' on a Docker base stays gzip (a dev-loop shortcut, not a requirement); zstd there is an
 * error rather than a quiet gzip, because it was asked for by name and Docker's format cannot say it.
 */
export function appLayerFormat(family: MediaFamily, requested: LayerCompression | undefined, baseName: string): { compression: LayerCompression; mediaType: string } {
  if (family === 'oci') {
    if (requested === 'none') return { compression: 'none', mediaType: OCI_LAYER };
    if (requested === 'zstd') return { compression: 'zstd', mediaType: OCI_LAYER_ZSTD };
    return { compression: 'gzip', mediaType: OCI_LAYER_GZIP };
  }
  if (requested === 'zstd') {
    throw new TskoError('BASE_IMAGE', `zstd layers need an OCI base image, and ${baseName} is a Docker schema 2 image (its format has no zstd layer type)`, {
      hint: 'use --layer-compression gzip, or an OCI base (defaultBaseImage / baseImageOverrides, KO_DEFAULTBASEIMAGE)',
    });
  }
  return { compression: 'gzip', mediaType: DOCKER_LAYER_GZIP };
}

export function familyOf(manifestMediaType: string): MediaFamily {
  return manifestMediaType.startsWith('application/vnd.docker.') ? 'docker' : 'oci';
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST;
}

/** Every manifest type tsko can read, for an Accept header. */
export const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];
