// Flags shared by the commands that build images (build, resolve, apply, dev, deploy), defined once
// with ko's names and defaults, and turned into a PublishRequest.
import { cpus } from 'node:os';
import { Command, Option } from 'commander';
import { TskoError } from '../errors.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { DEFAULT_PLATFORM, parsePlatform } from '../go/platform.js';
import type { Platform } from '../image/types.js';
import type { NamingMode } from '../publish/naming.js';

export interface BuildFlags {
  config?: string;
  bare?: boolean;
  baseImportPaths?: boolean;
  preserveImportPaths?: boolean;
  tags: string[];
  tagOnly?: boolean;
  push: boolean;
  ociLayoutPath?: string;
  tarball?: string;
  imageRefs?: string;
  imageLabel: string[];
  imageAnnotation: string[];
  imageUser?: string;
  insecureRegistry?: boolean;
  platform: string[];
  jobs: number;
  ldflags: string[];
  sbom: string;
  sbomDir?: string;
  disableOptimizations?: boolean;
  local?: boolean;
}

/** commander: a repeatable flag's values, in order. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
const collectList = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

function parseBool(value: string | undefined): boolean {
  if (value === undefined || value === '' || value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new TskoError('USAGE', `expected true or false, got "${value}"`);
}

function parseJobs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new TskoError('USAGE', `--jobs must be a positive whole number, got "${value}"`);
  return n;
}

export function addBuildFlags(command: Command): Command {
  return command
    .option('--config <path>', 'config file (default: tsko.config.ts or .ko.yaml in the working directory)')
    .option('--bare', 'use KO_DOCKER_REPO as the image name, without a suffix')
    .option('-B, --base-import-paths', "name images KO_DOCKER_REPO/<import path's last element>")
    .option('-P, --preserve-import-paths', 'name images KO_DOCKER_REPO/<full import path>')
    .option('-t, --tags <tags>', 'tags to push (repeatable or comma-separated)', collectList)
    .option('--tag-only', 'print name:tag instead of the digest reference (needs exactly one tag, not latest)')
    .addOption(new Option('--push [bool]', 'push images to KO_DOCKER_REPO').argParser(parseBool).default(true))
    .option('--oci-layout-path <dir>', 'also write the image into this OCI layout directory')
    .option('--tarball <file>', 'also write the image as a docker-loadable tarball')
    .option('--image-refs <file>', 'write the published references to this file, one per line')
    .option('--image-label <key=value>', 'label on the image config (repeatable)', collect)
    .option('--image-annotation <key=value>', 'annotation on the image manifest (repeatable)', collect)
    .option('--image-user <user>', 'the user the image runs as')
    .option('--insecure-registry', 'talk plain http (or unverified https) to the registry')
    .option('--platform <platforms>', 'os/arch[/variant], comma-separated or repeated', collectList)
    .addOption(new Option('-j, --jobs <n>', 'concurrent go builds').argParser(parseJobs).default(cpus().length))
    .option('--ldflags <flags>', 'linker flags; override the config (repeatable)', collect)
    .addOption(new Option('--sbom <format>', 'SBOM to publish').choices(['spdx', 'none']).default('spdx'))
    .option('--sbom-dir <dir>', 'also write SBOMs into this directory')
    .option('--disable-optimizations', 'build with -gcflags "all=-N -l" for debuggers')
    .option('-L, --local', "load into a local Docker daemon (not supported: tsko doesn't use Docker)");
}

export function normaliseBuildFlags(raw: Partial<BuildFlags>): BuildFlags {
  return {
    ...raw,
    tags: raw.tags && raw.tags.length > 0 ? [...new Set(raw.tags)] : ['latest'],
    push: raw.push ?? true,
    imageLabel: raw.imageLabel ?? [],
    imageAnnotation: raw.imageAnnotation ?? [],
    platform: raw.platform ?? [],
    jobs: raw.jobs ?? cpus().length,
    ldflags: raw.ldflags ?? [],
    sbom: raw.sbom ?? 'spdx',
  };
}

export function namingMode(flags: BuildFlags, warn: (message: string) => void): NamingMode {
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

export function keyValues(entries: string[], flag: string): Record<string, string> {
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
export function platformRequest(flags: Pick<BuildFlags, 'platform'>, config: ResolvedConfig): Platform[] | 'all' {
  const requested = flags.platform.length > 0 ? flags.platform : [...config.defaultPlatforms];
  if (requested.includes('all')) {
    if (requested.length > 1) throw new TskoError('PLATFORM', `--platform all cannot be combined with other platforms (got ${requested.join(',')})`);
    const { GOOS, GOARCH, GOARM } = config.env;
    if (GOOS || GOARCH || GOARM) {
      throw new TskoError('PLATFORM', '--platform all cannot be combined with GOOS/GOARCH/GOARM in the environment', { hint: 'unset them, or list the platforms' });
    }
    return 'all';
  }
  if (requested.length > 0) return requested.map(parsePlatform);
  const { GOOS, GOARCH, GOARM } = config.env;
  if (GOOS && GOARCH) return [parsePlatform(`${GOOS}/${GOARCH}${GOARM ? `/v${GOARM}` : ''}`)];
  return [DEFAULT_PLATFORM];
}

/** Like platformRequest, for commands that build a list of platforms they know up front (dev, deploy). */
export function resolvePlatforms(flags: BuildFlags, config: ResolvedConfig): Platform[] {
  const request = platformRequest(flags, config);
  if (request === 'all') throw new TskoError('PLATFORM', '--platform all is not supported by this command; list the platforms');
  return request;
}

export function tagOnlyCheck(flags: BuildFlags): void {
  if (!flags.tagOnly) return;
  if (flags.tags.length !== 1 || flags.tags[0] === 'latest') {
    throw new TskoError('USAGE', '--tag-only needs exactly one tag, and not latest');
  }
}
