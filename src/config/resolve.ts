// One place turns config file + environment + the command line's flags into the resolved config
// every lower layer reads (as Vite's resolveConfig): nothing below src/config reads process.env,
// and flags are merged over the file here and nowhere else. The result knows the files it came
// from, so `tsko dev` can watch them and resolve again with the same flags.
import { readFile } from 'node:fs/promises';
import { homedir as osHomedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_REGISTRY_ADDR } from '../registry/server/address.js';
import { TskoError } from '../errors.js';
import { isLoopbackHost } from '../net/loopback.js';
import { resolveBuildOptions, type BuildFlags, type ResolvedBuildOptions } from './build-options.js';
import type { BuildConfig, RegistryConfig } from './define.js';
import { resolveDevOptions, type DevFlags, type ResolvedDevOptions } from './dev-options.js';
import { findConfigFile, loadConfigFile } from './load.js';

export const KO_DEFAULT_BASE_IMAGE = 'cgr.dev/chainguard/static:latest';
/** KO_DOCKER_REPO's reserved value (and its default): the embedded registry. */
export const EMBEDDED_REPO = 'tsko.local';

export interface ResolvedBuild {
  id?: string;
  /** Absolute directory where go runs. */
  dir: string;
  main: string;
  env?: string[];
  flags?: string[];
  ldflags?: string[];
}

export interface ResolvedRegistryConfig {
  /** Absolute path of registry.caFile, when set. */
  readonly caFile: string | undefined;
  /** The PEM text of caFile, read once here so a missing file is a config error, not a TLS one. */
  readonly caCertificates: readonly string[];
  /** Registries reached over plain http or unverified https. */
  readonly insecure: readonly string[];
}

export interface ResolvedConfig {
  readonly cwd: string;
  readonly configFile: string | undefined;
  /** Files whose change means the config must be resolved again. */
  readonly dependencies: string[];
  /** The environment tsko was started with, for go and credential helpers. */
  readonly env: Readonly<Record<string, string>>;
  readonly defaultBaseImage: string;
  /** Keys lower-cased, as ko (viper) matches them. */
  readonly baseImageOverrides: ReadonlyMap<string, string>;
  readonly builds: readonly ResolvedBuild[];
  readonly defaultPlatforms: readonly string[];
  readonly defaultEnv: readonly string[];
  readonly defaultFlags: readonly string[];
  readonly defaultLdflags: readonly string[];
  /** ko's build flags merged over the file: naming, tags, platforms, sinks, image options. */
  readonly build: ResolvedBuildOptions;
  /** The dev loop's settings (services, target, platform, ports); only for `tsko dev` and `tsko deploy`. */
  readonly dev: ResolvedDevOptions | undefined;
  /** Things worth a warning line that are not errors (both --bare and -B, as ko warns). */
  readonly warnings: readonly string[];
  readonly registry: ResolvedRegistryConfig;
  readonly goBinary: string;
  /** KO_DOCKER_REPO, when set. */
  readonly dockerRepo: string | undefined;
  readonly sourceDateEpoch: string | undefined;
  readonly kodataDateEpoch: string | undefined;
  /** Where the embedded registry listens (TSKO_REGISTRY_ADDR, default 127.0.0.1:5001). */
  readonly embeddedRegistryAddr: string;
  /** tsko's cache root ($XDG_CACHE_HOME/tsko or ~/.cache/tsko). */
  readonly cacheDir: string;
  readonly homedir: string;
}

/**
 * What a command passes in: where it runs and what its command line said. `tsko dev` keeps it
 * and resolves it again (with `fresh`) when the config file changes.
 */
export interface InlineConfig {
  cwd?: string;
  /** --config PATH */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  homedir?: string;
  /** Re-import the config file even if it was loaded before (dev loop). */
  fresh?: boolean;
  /**
   * `dev` and `deploy` resolve the dev section too; they push once per save under `latest`, with
   * no SBOM, and never reuse a build. Other commands get ko's defaults.
   */
  command?: 'build' | 'resolve' | 'apply' | 'run' | 'dev' | 'deploy';
  /**
   * The main packages on the command line (`dev` and `deploy` pass theirs in `dev.targets`): the
   * config is looked for from each ./dir among them too, not only from cwd.
   */
  targets?: readonly string[];
  build?: BuildFlags;
  dev?: DevFlags;
}

export async function resolveConfig(inline: InlineConfig = {}): Promise<ResolvedConfig> {
  const cwd = resolve(inline.cwd ?? process.cwd());
  const rawEnv = inline.env ?? process.env;
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(rawEnv)) if (value !== undefined) env[key] = value;
  const home = inline.homedir ?? osHomedir();

  const file = findConfigFile({ cwd, explicit: inline.configFile, koConfigPath: env.KO_CONFIG_PATH || undefined, targets: inline.targets ?? inline.dev?.targets });
  // `tsko dev` stays up: its memory is kept free of Node's TypeScript parser (import-module.ts).
  const { config } = await loadConfigFile(file, { fresh: inline.fresh ?? false, cwd, stripTypesApart: inline.command === 'dev' });
  const configDir = file ? dirname(file) : cwd;

  const overrides = new Map<string, string>();
  for (const [importPath, base] of Object.entries(config.baseImageOverrides ?? {})) overrides.set(importPath.toLowerCase(), base);

  const registry = await resolveRegistry(config.registry ?? {}, configDir, file);
  const defaultPlatforms = env.KO_DEFAULTPLATFORMS ? splitList(env.KO_DEFAULTPLATFORMS) : (config.defaultPlatforms ?? []);
  const warnings: string[] = [];
  const embeddedRegistryAddr = env.TSKO_REGISTRY_ADDR || DEFAULT_REGISTRY_ADDR;
  const looping = inline.command === 'dev' || inline.command === 'deploy';
  const dev = looping ? resolveDevOptions(inline.dev ?? {}, config.dev ?? {}, { env, cwd, homedir: home, configDir, defaultPlatforms }) : undefined;
  const build = resolveBuildOptions(inline.build ?? {}, { defaultPlatforms, env }, (message) => warnings.push(message));
  const resolved: ResolvedConfig = {
    cwd,
    configFile: file,
    dependencies: [...(file ? [file] : []), ...(registry.caFile ? [registry.caFile] : [])],
    env,
    defaultBaseImage: env.KO_DEFAULTBASEIMAGE || config.defaultBaseImage || KO_DEFAULT_BASE_IMAGE,
    baseImageOverrides: overrides,
    builds: (config.builds ?? []).map((build) => resolveBuild(build, configDir)),
    defaultPlatforms,
    defaultEnv: config.defaultEnv ?? [],
    defaultFlags: config.defaultFlags ?? [],
    defaultLdflags: config.defaultLdflags ?? [],
    build: dev ? loopBuildOptions(build, dev, inline.command === 'dev', registryOf(env.KO_DOCKER_REPO || undefined, embeddedRegistryAddr)) : build,
    dev,
    warnings,
    registry,
    goBinary: env.KO_GO_PATH || 'go',
    dockerRepo: env.KO_DOCKER_REPO || undefined,
    sourceDateEpoch: env.SOURCE_DATE_EPOCH,
    kodataDateEpoch: env.KO_DATA_DATE_EPOCH,
    embeddedRegistryAddr,
    cacheDir: env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'tsko') : join(home, '.cache', 'tsko'),
    homedir: home,
  };
  return Object.freeze(resolved);
}

/**
 * The dev loop and `tsko deploy` build the one platform their target runs and push it under
 * `latest` without an SBOM. Compressing buys nothing when the registry and the revisions are both
 * on this machine, so there the dev loop's `auto` writes the app layers as plain tar; elsewhere
 * `auto` is gzip, and --layer-compression gzip|zstd|none says otherwise.
 */
function loopBuildOptions(build: ResolvedBuildOptions, dev: ResolvedDevOptions, devLoop: boolean, registry: string): ResolvedBuildOptions {
  const local = dev.target === 'local' && isLoopbackHost(registry);
  const compression = !devLoop ? (build.image.layerCompression ?? 'gzip') : dev.layerCompression === 'auto' ? (local ? 'none' : 'gzip') : dev.layerCompression;
  return {
    ...build,
    tags: ['latest'],
    push: true,
    platforms: [dev.platform],
    sbom: 'none',
    image: { ...build.image, layerCompression: compression },
  };
}

/** KO_DOCKER_REPO unset, or `tsko.local[/path]`: images go to the embedded registry. */
export function isEmbeddedRepo(dockerRepo: string): boolean {
  return dockerRepo === EMBEDDED_REPO || dockerRepo.startsWith(`${EMBEDDED_REPO}/`);
}

/** The registry host images go to: KO_DOCKER_REPO's, else the embedded registry's address. */
function registryOf(dockerRepo: string | undefined, embeddedAddr: string): string {
  if (dockerRepo === undefined || isEmbeddedRepo(dockerRepo)) return embeddedAddr;
  return dockerRepo.split('/')[0] ?? dockerRepo;
}

async function resolveRegistry(registry: RegistryConfig, configDir: string, file: string | undefined): Promise<ResolvedRegistryConfig> {
  const insecure = registry.insecure ?? [];
  if (registry.caFile === undefined) return { caFile: undefined, caCertificates: [], insecure };
  const caFile = resolve(configDir, registry.caFile);
  const where = file ? `${file}: registry.caFile` : 'registry.caFile';
  let pem: string;
  try {
    pem = await readFile(caFile, 'utf8');
  } catch (err) {
    throw new TskoError('CONFIG_INVALID', `${where}: cannot read ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new TskoError('CONFIG_INVALID', `${where}: ${caFile} holds no PEM certificate`);
  return { caFile, caCertificates: [pem], insecure };
}

function resolveBuild(build: BuildConfig, configDir: string): ResolvedBuild {
  const out: ResolvedBuild = { dir: resolve(configDir, build.dir ?? '.'), main: build.main };
  if (build.id !== undefined) out.id = build.id;
  if (build.env !== undefined) out.env = build.env;
  if (build.flags !== undefined) out.flags = splitFlags(build.flags);
  if (build.ldflags !== undefined) out.ldflags = splitFlags(build.ldflags);
  return out;
}

/** ko accepts flags as a list or as one whitespace-separated string. */
function splitFlags(value: string[] | string): string[] {
  return typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : value;
}

function splitList(value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter(Boolean);
}
