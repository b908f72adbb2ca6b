// ko's build flags over the config: naming, tags, platforms, what images carry and where they
// go. The command line wins over tsko.config.ts / .ko.yaml, which win over KO_* and GOOS/GOARCH
// defaults; the result is the `build` part of the resolved config every command hands down.
import { cpus } from 'node:os';
import { TskoError } from '../errors.js';
import { DEFAULT_PLATFORM, parsePlatform } from '../go/platform.js';
import type { LayerCompression } from '../image/media-types.js';
import type { Platform } from '../image/types.js';

export type NamingMode = 'md5' | 'preserve' | 'base' | 'bare';

/** What goes into each image besides the binary, and how it is built. */
export interface ImageOptions {
  user?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** --ldflags: overrides the build config's and the default ldflags. */
  ldflags?: string[];
  /** Extra go build flags after the configured ones (e.g. --disable-optimizations). */
  extraGoFlags?: string[];
  /**
   * gzip by default. 'zstd' (--layer-compression zstd) needs an OCI base. 'none' writes the app
   * layers as plain tar (OCI bases only; Docker's format has no such layer type): the dev loop's
   * choice when the registry is on this machine.
   */
  layerCompression?: LayerCompression;
}

/** ko's build flags as a command line gave them (commander's names); absent = not given. */
export interface BuildFlags {
  bare?: boolean;
  baseImportPaths?: boolean;
  preserveImportPaths?: boolean;
  tags?: string[];
  tagOnly?: boolean;
  push?: boolean;
  ociLayoutPath?: string;
  tarball?: string;
  imageRefs?: string;
  imageLabel?: string[];
  imageAnnotation?: string[];
  imageUser?: string;
  insecureRegistry?: boolean;
  platform?: string[];
  jobs?: number;
  ldflags?: string[];
  sbom?: string;
  sbomDir?: string;
  disableOptimizations?: boolean;
  local?: boolean;
  /** --layer-compression: gzip (ko's) or zstd. */
  layerCompression?: string;
}

export interface ResolvedBuildOptions {
  readonly naming: NamingMode;
  /** Deduplicated, `latest` when none was given. */
  readonly tags: readonly string[];
  readonly tagOnly: boolean;
  readonly push: boolean;
  /** The platforms to build, or `all`: every platform the base image's index offers. */
  readonly platforms: readonly Platform[] | 'all';
  readonly image: Readonly<ImageOptions>;
  readonly sbom: 'spdx' | 'none';
  readonly sbomDir: string | undefined;
  readonly ociLayoutPath: string | undefined;
  readonly tarball: string | undefined;
  readonly imageRefs: string | undefined;
  /** Concurrent go builds across the whole command. */
  readonly jobs: number;
  /** --insecure-registry: plain http or unverified https for every registry. */
  readonly insecureRegistry: boolean;
}

export interface BuildDefaults {
  defaultPlatforms: readonly string[];
  env: Readonly<Record<string, string>>;
}

/** The build part of the resolved config; `warn` gets ko's warnings (both --bare and -B). */
export function resolveBuildOptions(flags: BuildFlags, defaults: BuildDefaults, warn: (message: string) => void): ResolvedBuildOptions {
  if (flags.local) throw new TskoError('USAGE', '--local needs a Docker daemon, which tsko does not use', { hint: 'use --tarball FILE and `docker load`, or push to a registry' });
  const platformFlags = flags.platform ?? [];
  if (flags.tarball && (platformFlags.length > 1 || platformFlags.includes('all'))) {
    throw new TskoError('USAGE', '--tarball can hold only one platform; pass a single --platform');
  }
  const tags = flags.tags && flags.tags.length > 0 ? [...new Set(flags.tags)] : ['latest'];
  if (flags.tagOnly && (tags.length !== 1 || tags[0] === 'latest')) {
    throw new TskoError('USAGE', '--tag-only needs exactly one tag, and not latest');
  }
  const jobs = flags.jobs ?? cpus().length;
  if (!Number.isInteger(jobs) || jobs < 1) throw new TskoError('USAGE', `--jobs must be a positive whole number, got "${jobs}"`);
  const labels = keyValues(flags.imageLabel ?? [], '--image-label');
  const annotations = keyValues(flags.imageAnnotation ?? [], '--image-annotation');
  const image: ImageOptions = {
    ...(flags.imageUser !== undefined ? { user: flags.imageUser } : {}),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(flags.ldflags && flags.ldflags.length > 0 ? { ldflags: [...flags.ldflags] } : {}),
    ...(flags.disableOptimizations ? { extraGoFlags: ['-gcflags', 'all=-N -l'] } : {}),
    ...(flags.layerCompression !== undefined ? { layerCompression: layerCompression(flags.layerCompression) } : {}),
  };
  if (flags.sbom !== undefined && flags.sbom !== 'spdx' && flags.sbom !== 'none') {
    throw new TskoError('USAGE', `--sbom must be spdx or none, got "${flags.sbom}"`);
  }
  return {
    naming: namingMode(flags, warn),
    tags,
    tagOnly: Boolean(flags.tagOnly),
    push: flags.push ?? true,
    platforms: platformRequest(platformFlags, defaults),
    image,
    sbom: flags.sbom === 'none' ? 'none' : 'spdx',
    sbomDir: flags.sbomDir,
    ociLayoutPath: flags.ociLayoutPath,
    tarball: flags.tarball,
    imageRefs: flags.imageRefs,
    jobs,
    insecureRegistry: Boolean(flags.insecureRegistry),
  };
}

export function namingMode(flags: Pick<BuildFlags, 'bare' | 'baseImportPaths' | 'preserveImportPaths'>, warn: (message: string) => void): NamingMode {
  const chosen = [flags.bare && '--bare', flags.baseImportPaths && '-B', flags.preserveImportPaths && '-P'].filter(Boolean);
  if (flags.preserveImportPaths && (flags.bare || flags.baseImportPaths)) {
    throw new TskoError('USAGE', `${chosen.join(' and ')} cannot be combined`);
  }
  if (flags.bare && flags.baseImportPaths) {
    warn('both --bare and -B are set; -B wins, as in ko');
    return 'base';
  }
  if (flags.baseImportPaths) return 'base';
  if (flags.bare) return 'bare';
  if (flags.preserveImportPaths) return 'preserve';
  return 'md5';
}

function layerCompression(value: string): 'gzip' | 'zstd' {
  if (value !== 'gzip' && value !== 'zstd') throw new TskoError('USAGE', `--layer-compression must be gzip or zstd, got "${value}"`);
  return value;
}

function keyValues(entries: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new TskoError('USAGE', `${flag} expects key=value, got "${entry}"`);
    out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/**
 * --platform, else the config's defaultPlatforms, else GOOS/GOARCH, else linux/amd64 (as ko);
 * `all` stands alone and means every platform of the base image's index.
 */
export function platformRequest(flagged: readonly string[], defaults: BuildDefaults): Platform[] | 'all' {
  const requested = flagged.length > 0 ? flagged : [...defaults.defaultPlatforms];
  const { GOOS, GOARCH, GOARM } = defaults.env;
  if (requested.includes('all')) {
    if (requested.length > 1) throw new TskoError('PLATFORM', `--platform all cannot be combined with other platforms (got ${requested.join(',')})`);
    if (GOOS || GOARCH || GOARM) {
      throw new TskoError('PLATFORM', '--platform all cannot be combined with GOOS/GOARCH/GOARM in the environment', { hint: 'unset them, or list the platforms' });
    }
    return 'all';
  }
  if (requested.length > 0) return requested.map(parsePlatform);
  if (GOOS && GOARCH) return [parsePlatform(`${GOOS}/${GOARCH}${GOARM ? `/v${GOARM}` : ''}`)];
  return [DEFAULT_PLATFORM];
}
