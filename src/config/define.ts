// The shape of tsko.config.ts (and of .ko.yaml, which tsko also reads for drop-in use): every key
// ko's config has, plus a `dev` section for the dev loop. `defineConfig` only gives editors types.

export interface BuildConfig {
  /** Optional name, for messages. */
  id?: string;
  /** Where `go` runs for this build, relative to the config file. */
  dir?: string;
  /** The main package, relative to dir (`./cmd/app`). Required. */
  main: string;
  /** KEY=VALUE for go build; replaces defaultEnv. */
  env?: string[];
  /** go build flags; a list, or one whitespace-separated string. Replaces defaultFlags. */
  flags?: string[] | string;
  /** Linker flags, joined into one -ldflags argument. Replaces defaultLdflags. */
  ldflags?: string[] | string;
}

export interface DevServiceConfig {
  /** Import path or ./dir of the main package. */
  path: string;
  /** Front port of the local target for this service; with Cloud Run, the container port of a service tsko creates. */
  port?: number;
}

/** Where `--target kubernetes` rolls revisions out; flags win over these. */
export interface KubernetesTargetConfig {
  /** kubeconfig context (default: its current-context). */
  context?: string;
  /** Namespace (default: the context's, else `default`). */
  namespace?: string;
  /** The Deployment whose container image each deploy patches (default: the service name). */
  deployment?: string;
  /** The container to patch, needed when the Deployment has several. */
  container?: string;
  /** Instead of patching: YAML files with ko:// references, resolved and server-side applied each time. */
  manifests?: string[];
  /** Seconds to wait for a rollout (default 300). */
  timeout?: number;
}

/** Where `--target cloudrun` rolls revisions out; flags win over these. */
export interface CloudRunTargetConfig {
  project?: string;
  region?: string;
  /** The Cloud Run service (default: the service name). */
  service?: string;
  /** Seconds to wait for a revision to get ready (default 300). */
  timeout?: number;
  /** Grant roles/run.invoker to allUsers, as gcloud's --allow-unauthenticated (default false: a created service is private). */
  allowUnauthenticated?: boolean;
}

/** The dev loop's section, read by `tsko dev` and `tsko deploy`; every key is checked. */
export interface DevConfig {
  services?: Array<string | DevServiceConfig>;
  target?: 'local' | 'kubernetes' | 'cloudrun';
  port?: number;
  /** Images kept per repository in the embedded registry during a dev session. */
  keepImages?: number;
  kubernetes?: KubernetesTargetConfig;
  cloudrun?: CloudRunTargetConfig;
}

/** How tsko talks to registries (credentials come from docker's config.json; see `tsko login`). */
export interface RegistryConfig {
  /** PEM file of CA certificates to trust besides the system's and NODE_EXTRA_CA_CERTS; relative to the config file. */
  caFile?: string;
  /** Registries (host[:port]) reached over plain http or unverified https, as --insecure-registry does for all. */
  insecure?: string[];
}

export interface UserConfig {
  /** Base image for every build without an override (ko's default: cgr.dev/chainguard/static:latest). */
  defaultBaseImage?: string;
  /** Import path → base image. */
  baseImageOverrides?: Record<string, string>;
  builds?: BuildConfig[];
  /** e.g. ['linux/amd64', 'linux/arm64'], or ['all']. */
  defaultPlatforms?: string[];
  defaultEnv?: string[];
  defaultFlags?: string[];
  defaultLdflags?: string[];
  dev?: DevConfig;
  registry?: RegistryConfig;
}

export function defineConfig<T extends UserConfig>(config: T): T {
  return config;
}
