// `tsko dev` and `tsko deploy` flags over the config's `dev` section and the environment
// (KUBECONFIG, CLOUDSDK_*): which services, which target and its settings, which platform. Flags
// win over the config, which wins over the environment. Merged here only, so reloading the
// config in a running `tsko dev` gives exactly what a fresh start would.
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { TskoError } from '../errors.js';
import { DEFAULT_PLATFORM, formatPlatform, hostPlatform, parsePlatform, samePlatform } from '../go/platform.js';
import type { Platform } from '../image/types.js';
import type { DevConfig } from './define.js';

export type TargetKind = 'local' | 'kubernetes' | 'cloudrun';

/** The dev and deploy flags as a command line gave them (commander's names); absent = not given. */
export interface DevFlags {
  /** The import paths or ./dirs on the command line. */
  targets?: string[];
  target?: string;
  port?: number;
  platform?: string;
  keepImages?: number;
  readyTimeout?: number;
  debounce?: number;
  layerCompression?: 'auto' | 'gzip' | 'zstd' | 'none';
  context?: string;
  namespace?: string;
  deployment?: string;
  container?: string;
  filename?: string[];
  project?: string;
  region?: string;
  service?: string;
  /** false with --no-traffic. */
  traffic?: boolean;
  tag?: string;
  /** --allow-unauthenticated (true) / --no-allow-unauthenticated (false). */
  allowUnauthenticated?: boolean;
  /** Seconds. */
  timeout?: number;
}

export interface DevService {
  /** Import path or ./dir. */
  target: string;
  port?: number;
}

export interface ResolvedKubernetesTarget {
  /** kubeconfig files in precedence order (KUBECONFIG's entries, else ~/.kube/config). */
  kubeconfig: { paths: string[]; source: string; context?: string; namespace?: string };
  deployment?: string;
  container?: string;
  /** Absolute paths of YAML files with ko:// references (manifests mode), else empty. */
  manifests: string[];
  timeoutMs: number;
}

export interface ResolvedCloudRunTarget {
  project: string;
  region: string;
  service?: string;
  container?: string;
  /** The Admin API's base URL (CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN, else run.googleapis.com). */
  apiBase: string | undefined;
  noTraffic: boolean;
  tag?: string;
  timeoutMs: number;
  /** Grant roles/run.invoker to allUsers (a created service is private otherwise). */
  allowUnauthenticated: boolean;
}

export interface ResolvedDevOptions {
  readonly services: readonly DevService[];
  readonly target: TargetKind;
  /** What to build: this machine's platform for the local target. */
  readonly platform: Platform;
  /** The local target's front port for the first service (the next ones count up). */
  readonly port: number;
  /** Images kept per repository in the embedded registry. */
  readonly keepImages: number;
  readonly readyTimeoutMs: number | undefined;
  /** Quiet time after a save before building. */
  readonly debounceMs: number;
  readonly layerCompression: 'auto' | 'gzip' | 'zstd' | 'none';
  readonly kubernetes: ResolvedKubernetesTarget | undefined;
  readonly cloudrun: ResolvedCloudRunTarget | undefined;
}

export interface DevContext {
  env: Readonly<Record<string, string>>;
  cwd: string;
  homedir: string;
  /** Where relative paths in the config file are based. */
  configDir: string;
  defaultPlatforms: readonly string[];
}

const DEFAULT_TIMEOUT_S = 300;
const DEFAULT_PORT = 8080;
const DEFAULT_KEEP_IMAGES = 20;
const DEFAULT_DEBOUNCE_MS = 10;

export function resolveDevOptions(flags: DevFlags, section: DevConfig, context: DevContext): ResolvedDevOptions {
  const target = targetKind(flags.target ?? section.target ?? 'local');
  const platform = target === 'local' ? localPlatform(flags.platform) : remotePlatform(flags.platform, context);
  return {
    services: services(flags.targets ?? [], section.services),
    target,
    platform,
    port: flags.port ?? section.port ?? DEFAULT_PORT,
    keepImages: flags.keepImages ?? section.keepImages ?? DEFAULT_KEEP_IMAGES,
    readyTimeoutMs: flags.readyTimeout,
    debounceMs: flags.debounce ?? DEFAULT_DEBOUNCE_MS,
    layerCompression: flags.layerCompression ?? 'auto',
    kubernetes: target === 'kubernetes' ? kubernetesTarget(flags, section, context) : undefined,
    cloudrun: target === 'cloudrun' ? cloudRunTarget(flags, section, context) : undefined,
  };
}

function targetKind(kind: string): TargetKind {
  if (kind !== 'local' && kind !== 'kubernetes' && kind !== 'cloudrun') {
    throw new TskoError('USAGE', `--target must be local, kubernetes or cloudrun, got "${kind}"`);
  }
  return kind;
}

function services(targets: readonly string[], configured: DevConfig['services']): DevService[] {
  if (targets.length > 0) return targets.map((target) => ({ target }));
  if (configured && configured.length > 0) {
    return configured.map((entry) => (typeof entry === 'string' ? { target: entry } : { target: entry.path, ...(entry.port ? { port: entry.port } : {}) }));
  }
  return [{ target: '.' }];
}

/** The local target runs revisions on this machine: only its platform will do. */
function localPlatform(flag: string | undefined): Platform {
  const host = hostPlatform();
  if (flag === undefined) return host;
  const wanted = parsePlatform(flag);
  if (!samePlatform(wanted, host)) throw new TskoError('PLATFORM', `the local target runs revisions on this machine (${formatPlatform(host)}), not ${flag}`);
  return wanted;
}

/** Remote targets build for --platform, else the config's one default platform, else GOOS/GOARCH, else linux/amd64. */
function remotePlatform(flag: string | undefined, context: DevContext): Platform {
  if (flag) return parsePlatform(flag);
  const configured = context.defaultPlatforms.filter((p) => p !== 'all');
  if (configured.length > 1) throw new TskoError('USAGE', `the config lists ${configured.length} platforms; a deploy builds one: pass --platform`);
  if (configured[0]) return parsePlatform(configured[0]);
  const { GOOS, GOARCH } = context.env;
  if (GOOS && GOARCH) return parsePlatform(`${GOOS}/${GOARCH}`);
  return DEFAULT_PLATFORM;
}

function kubernetesTarget(flags: DevFlags, config: DevConfig, context: DevContext): ResolvedKubernetesTarget {
  const section = config.kubernetes ?? {};
  if (flags.traffic === false || flags.tag || flags.project || flags.region || flags.service || flags.allowUnauthenticated !== undefined) {
    throw new TskoError('USAGE', '--no-traffic, --tag, --project, --region, --service and --allow-unauthenticated are for --target cloudrun');
  }
  const fromEnv = (context.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const kubeContext = flags.context ?? section.context;
  const namespace = flags.namespace ?? section.namespace;
  const deployment = flags.deployment ?? section.deployment;
  const container = flags.container ?? section.container;
  const manifests =
    flags.filename && flags.filename.length > 0
      ? flags.filename.map((f) => resolve(context.cwd, f))
      : (section.manifests ?? []).map((f) => (isAbsolute(f) ? f : resolve(context.configDir, f)));
  return {
    kubeconfig: {
      paths: fromEnv.length > 0 ? fromEnv.map((p) => resolve(context.cwd, p)) : [join(context.homedir, '.kube', 'config')],
      source: fromEnv.length > 0 ? 'KUBECONFIG' : '~/.kube/config',
      ...(kubeContext ? { context: kubeContext } : {}),
      ...(namespace ? { namespace } : {}),
    },
    ...(deployment ? { deployment } : {}),
    ...(container ? { container } : {}),
    manifests,
    timeoutMs: (flags.timeout ?? section.timeout ?? DEFAULT_TIMEOUT_S) * 1000,
  };
}

function cloudRunTarget(flags: DevFlags, config: DevConfig, context: DevContext): ResolvedCloudRunTarget {
  const section = config.cloudrun ?? {};
  const { env } = context;
  const project = flags.project ?? section.project ?? env.CLOUDSDK_CORE_PROJECT ?? env.GOOGLE_CLOUD_PROJECT;
  const region = flags.region ?? section.region ?? env.CLOUDSDK_RUN_REGION;
  if (!project) throw new TskoError('USAGE', '--target cloudrun needs a project: pass --project (or set dev.cloudrun.project, or CLOUDSDK_CORE_PROJECT)');
  if (!region) throw new TskoError('USAGE', '--target cloudrun needs a region: pass --region (or set dev.cloudrun.region, or CLOUDSDK_RUN_REGION)');
  if (flags.context || flags.namespace || flags.deployment || (flags.filename && flags.filename.length > 0)) {
    throw new TskoError('USAGE', '--context, --namespace, --deployment and -f are for --target kubernetes');
  }
  if (flags.tag !== undefined && !/^[a-z]([a-z0-9-]{0,45}[a-z0-9])?$/.test(flags.tag)) {
    throw new TskoError('USAGE', `--tag "${flags.tag}" must be lowercase letters, digits and hyphens, starting with a letter`);
  }
  const service = flags.service ?? section.service;
  return {
    project,
    region,
    ...(service ? { service } : {}),
    ...(flags.container ? { container: flags.container } : {}),
    apiBase: env.CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN || undefined,
    noTraffic: flags.traffic === false,
    ...(flags.tag ? { tag: flags.tag } : {}),
    timeoutMs: (flags.timeout ?? section.timeout ?? DEFAULT_TIMEOUT_S) * 1000,
    allowUnauthenticated: flags.allowUnauthenticated ?? section.allowUnauthenticated ?? false,
  };
}
