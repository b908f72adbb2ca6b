// The remote targets' flags, shared by `tsko dev` and `tsko deploy`, and the one place that turns
// flags + the config's dev.kubernetes / dev.cloudrun sections + the environment (KUBECONFIG,
// CLOUDSDK_*) into Kubernetes and Cloud Run targets. Flags win over the config.
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { ResolvedConfig } from '../config/resolve.js';
import { createCloudRunTarget, DEFAULT_RUN_API } from '../deploy/cloudrun.js';
import { createTokenSource, type TokenSource } from '../deploy/gcp-token.js';
import type { KubeConfigOptions } from '../deploy/kube-config.js';
import { createKubernetesTarget } from '../deploy/kubernetes.js';
import { assertRegistryReachable, isLoopbackHost } from '../deploy/loopback.js';
import type { Target } from '../deploy/target.js';
import { TskoError } from '../errors.js';
import { collect } from './common.js';
import type { EventBus } from '../events.js';
import { DEFAULT_PLATFORM, parsePlatform } from '../go/platform.js';
import type { Platform } from '../image/types.js';

export type TargetKind = 'local' | 'kubernetes' | 'cloudrun';

export interface TargetFlags {
  target?: string;
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
  timeout?: number;
}

const DEFAULT_TIMEOUT_S = 300;

function seconds(value: string): number {
  const n = Number(value.replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new TskoError('USAGE', `--timeout must be a positive number of seconds, got "${value}"`);
  return n;
}

/** --target is each command's own; these are the rest. */
export function addTargetFlags(command: Command): Command {
  return command
    .option('--context <name>', 'kubernetes: kubeconfig context (default: current-context)')
    .option('--namespace <ns>', "kubernetes: namespace (default: the context's, else default)")
    .option('--deployment <name>', 'kubernetes: the Deployment to patch (default: the service name)')
    .option('--container <name>', 'kubernetes, cloudrun: the container to update, when there are several')
    .option('-f, --filename <file>', 'kubernetes: apply this YAML (ko:// references resolved) instead of patching; repeatable', collect)
    .option('--project <id>', 'cloudrun: Google Cloud project (default: CLOUDSDK_CORE_PROJECT)')
    .option('--region <region>', 'cloudrun: region (default: CLOUDSDK_RUN_REGION)')
    .option('--service <name>', 'cloudrun: the Cloud Run service (default: the service name)')
    .option('--no-traffic', 'cloudrun: roll a revision that gets no traffic')
    .option('--tag <name>', 'cloudrun: tag the new revision (its own URL)')
    .addOption(new Option('--timeout <seconds>', `kubernetes, cloudrun: how long a rollout may take (default ${DEFAULT_TIMEOUT_S})`).argParser(seconds));
}

export function targetKind(flags: TargetFlags, config: ResolvedConfig): TargetKind {
  const kind = flags.target ?? config.dev.target ?? 'local';
  if (kind !== 'local' && kind !== 'kubernetes' && kind !== 'cloudrun') {
    throw new TskoError('USAGE', `--target must be local, kubernetes or cloudrun, got "${kind}"`);
  }
  return kind;
}

/** Remote targets build for --platform, else the config's first default platform, else linux/amd64. */
export function remotePlatform(flag: string | undefined, config: ResolvedConfig): Platform {
  if (flag) return parsePlatform(flag);
  const configured = config.defaultPlatforms.filter((p) => p !== 'all');
  if (configured.length > 1) throw new TskoError('USAGE', `the config lists ${configured.length} platforms; a deploy builds one: pass --platform`);
  if (configured[0]) return parsePlatform(configured[0]);
  const { GOOS, GOARCH } = config.env;
  if (GOOS && GOARCH) return parsePlatform(`${GOOS}/${GOARCH}`);
  return DEFAULT_PLATFORM;
}

export interface RemoteTargets {
  kind: 'kubernetes' | 'cloudrun';
  /** A target for one service of the session. */
  make(service: string): Target;
  /**
   * Refuses a loopback registry when the target's endpoint is elsewhere. `strict` (tsko deploy)
   * also fails when the endpoint cannot be known yet (no kubeconfig); tsko dev lets each deploy
   * report that instead, so a kubeconfig fixed later is picked up.
   */
  checkRegistry(dockerRepo: string, strict: boolean): Promise<void>;
}

export function remoteTargets(kind: 'kubernetes' | 'cloudrun', flags: TargetFlags, config: ResolvedConfig, events: EventBus): RemoteTargets {
  return kind === 'kubernetes' ? kubernetesTargets(flags, config, events) : cloudRunTargets(flags, config, events);
}

function kubeconfigOptions(flags: TargetFlags, config: ResolvedConfig): KubeConfigOptions {
  const section = config.dev.kubernetes ?? {};
  const fromEnv = (config.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const context = flags.context ?? section.context;
  const namespace = flags.namespace ?? section.namespace;
  return {
    paths: fromEnv.length > 0 ? fromEnv.map((p) => resolve(config.cwd, p)) : [join(config.homedir, '.kube', 'config')],
    source: fromEnv.length > 0 ? 'KUBECONFIG' : '~/.kube/config',
    ...(context ? { context } : {}),
    ...(namespace ? { namespace } : {}),
  };
}

function kubernetesTargets(flags: TargetFlags, config: ResolvedConfig, events: EventBus): RemoteTargets {
  const section = config.dev.kubernetes ?? {};
  const kubeconfig = kubeconfigOptions(flags, config);
  const configDir = config.configFile ? dirname(config.configFile) : config.cwd;
  const manifests = flags.filename && flags.filename.length > 0
    ? flags.filename.map((f) => resolve(config.cwd, f))
    : (section.manifests ?? []).map((f) => (isAbsolute(f) ? f : resolve(configDir, f)));
  const deployment = flags.deployment ?? section.deployment;
  const container = flags.container ?? section.container;
  const timeoutMs = (flags.timeout ?? section.timeout ?? DEFAULT_TIMEOUT_S) * 1000;
  if (flags.traffic === false || flags.tag || flags.project || flags.region || flags.service) {
    throw new TskoError('USAGE', '--no-traffic, --tag, --project, --region and --service are for --target cloudrun');
  }
  // One map for the session: a manifest naming two services' images resolves both.
  const references = new Map<string, string>();
  const make = (): ReturnType<typeof createKubernetesTarget> =>
    createKubernetesTarget({
      kubeconfig,
      ...(deployment ? { deployment } : {}),
      ...(container ? { container } : {}),
      ...(manifests.length > 0 ? { manifests } : {}),
      timeoutMs,
      references,
      events,
    });
  return {
    kind: 'kubernetes',
    make,
    async checkRegistry(dockerRepo, strict) {
      const probe = make();
      let server: string;
      try {
        server = await probe.server();
      } catch (err) {
        if (strict || !isLoopbackHost(dockerRepo)) {
          if (strict) throw err;
          return;
        }
        events.emit({ type: 'log', level: 'warn', message: `${(err as Error).message}; every deploy will try again` });
        return;
      } finally {
        await probe.close();
      }
      assertRegistryReachable(dockerRepo, server, `the cluster at ${server}`, 'set KO_DOCKER_REPO to a registry the cluster can pull from (e.g. REGION-docker.pkg.dev/PROJECT/REPO), or use a cluster on this machine (kind, minikube)');
    },
  };
}

function cloudRunTargets(flags: TargetFlags, config: ResolvedConfig, events: EventBus): RemoteTargets {
  const section = config.dev.cloudrun ?? {};
  const env = config.env;
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
  const apiBase = env.CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN || DEFAULT_RUN_API;
  const service = flags.service ?? section.service;
  const container = flags.container;
  const timeoutMs = (flags.timeout ?? section.timeout ?? DEFAULT_TIMEOUT_S) * 1000;
  // One token source for the session: one ADC/gcloud lookup, one "using a token from" line.
  const tokens: TokenSource = createTokenSource({ env: { ...env }, ...(env.CLOUDSDK_AUTH_ACCESS_TOKEN ? { envToken: env.CLOUDSDK_AUTH_ACCESS_TOKEN } : {}), events });
  if (flags.traffic === false && !flags.tag) {
    events.emit({ type: 'log', level: 'warn', message: '--no-traffic without --tag: no URL reaches the new revision' });
  }
  return {
    kind: 'cloudrun',
    make: () =>
      createCloudRunTarget({
        project,
        region,
        ...(service ? { service } : {}),
        ...(container ? { container } : {}),
        apiBase,
        ...(flags.traffic === false ? { noTraffic: true } : {}),
        ...(flags.tag ? { tag: flags.tag } : {}),
        timeoutMs,
        tokens,
        events,
      }),
    async checkRegistry(dockerRepo) {
      assertRegistryReachable(dockerRepo, apiBase, 'Cloud Run', 'set KO_DOCKER_REPO to an Artifact Registry repository Cloud Run can pull from (REGION-docker.pkg.dev/PROJECT/REPO)');
    },
  };
}
