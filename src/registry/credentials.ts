// Registry credentials the way docker finds them: config.json in $DOCKER_CONFIG or ~/.docker,
// `auths` entries (inline base64 `auth` or username/password), then a per-registry credHelper,
// then the global credsStore, both run as `docker-credential-<name> get`.
// This is the one module below config/ that reads the environment, and only through `env`.
import { readFile } from 'node:fs/promises';
import { homedir as osHomedir } from 'node:os';
import { join } from 'node:path';
import { TskoError } from '../errors.js';
import { execCredentialHelper } from './credential-helper.js';
import type { Credentials } from './auth.js';
import { DOCKER_HUB_REGISTRY } from './reference.js';

export type { Credentials } from './auth.js';

/** The key `docker login` uses for Docker Hub. */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set([DOCKER_HUB_REGISTRY, 'docker.io', 'registry-1.docker.io']);

/** True for the host names Docker Hub goes by, whose config.json key is DOCKER_HUB_CONFIG_KEY. */
export function isDockerHubHost(host: string): boolean {
  return DOCKER_HUB_HOSTS.has(host.toLowerCase());
}

export interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Runs `docker-credential-<name> get` with `input` on stdin and returns its stdout ('' for "not found"). */
export type HelperRunner = (helper: string, input: string, env: Record<string, string | undefined>, signal?: AbortSignal) => Promise<string>;

/** Runs a command (gcloud) and returns its stdout, or undefined when it is missing or fails. */
export type CommandRunner = (file: string, args: string[], env: Record<string, string | undefined>, signal?: AbortSignal) => Promise<string | undefined>;

export interface CredentialLookupOptions {
  env?: Record<string, string | undefined>;
  homedir?: string;
  runHelper?: HelperRunner;
  runCommand?: CommandRunner;
  /** Told which source supplied credentials when it is not the config file (e.g. gcloud). */
  onInfo?: (message: string) => void;
  signal?: AbortSignal;
}

export function dockerConfigPath(env: Record<string, string | undefined> = process.env, home = osHomedir()): string {
  const dir = env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(home, '.docker');
  return join(dir, 'config.json');
}

/** The host[:port] a config.json key names: docker writes `host`, `https://host` or `https://host/v1/`. */
export function configKeyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

function sameRegistry(key: string, registry: string): boolean {
  const host = configKeyHost(key);
  const want = registry.toLowerCase();
  if (host === want) return true;
  return DOCKER_HUB_HOSTS.has(want) && DOCKER_HUB_HOSTS.has(host);
}

/** What the config and helpers expect as the server for a registry (Docker Hub has its own key). */
function serverUrlFor(registry: string): string {
  return DOCKER_HUB_HOSTS.has(registry.toLowerCase()) ? DOCKER_HUB_CONFIG_KEY : registry;
}

export async function readDockerConfig(path: string): Promise<DockerConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TskoError('REGISTRY_AUTH', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as DockerConfigFile;
  } catch (err) {
    throw new TskoError('REGISTRY_AUTH', `malformed docker config ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function fromAuthEntry(entry: NonNullable<DockerConfigFile['auths']>[string]): Credentials | undefined {
  // docker's convention for an identity (refresh) token: user `<token>`, the token as password.
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') return { username: '<token>', password: entry.identitytoken };
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

export const runCredentialHelper: HelperRunner = (helper, input, env, signal) => execCredentialHelper(helper, 'get', input, env, signal);

async function fromHelper(
  helper: string,
  registry: string,
  run: HelperRunner,
  env: Record<string, string | undefined>,
  signal?: AbortSignal,
): Promise<Credentials | undefined> {
  const out = (await run(helper, serverUrlFor(registry), env, signal)).trim();
  if (out === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new TskoError('REGISTRY_AUTH', `credential helper docker-credential-${helper} printed something that is not JSON`);
  }
  const o = parsed as { Username?: unknown; Secret?: unknown };
  if (typeof o.Username !== 'string' || typeof o.Secret !== 'string') {
    throw new TskoError('REGISTRY_AUTH', `credential helper docker-credential-${helper} printed JSON without Username and Secret`);
  }
  if (o.Secret === '') return undefined;
  return { username: o.Username, password: o.Secret };
}

const runCommand: CommandRunner = async (file, args, env, signal) => {
  // execa loads only when a command actually runs (gcloud), not for every credentials lookup.
  const { execa } = await import('execa');
  const result = await execa(file, args, { env, extendEnv: false, timeout: 30_000, reject: false, ...(signal ? { cancelSignal: signal } : {}) });
  return result.failed ? undefined : String(result.stdout);
};

/** Google's registries: Container Registry (`gcr.io`, `*.gcr.io`) and Artifact Registry (`*.pkg.dev`). */
export function isGoogleRegistry(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').toLowerCase();
  return host === 'gcr.io' || host.endsWith('.gcr.io') || host.endsWith('.pkg.dev');
}

/**
 * For Google registries without configured credentials: a service-account key from
 * GOOGLE_APPLICATION_CREDENTIALS (Basic `_json_key`), else `gcloud auth print-access-token`
 * (Basic `oauth2accesstoken`), as docker-credential-gcr and ko's keychain do.
 */
async function fromGoogle(registry: string, env: Record<string, string | undefined>, options: CredentialLookupOptions): Promise<Credentials | undefined> {
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile !== undefined && keyFile !== '') {
    try {
      const text = await readFile(keyFile, 'utf8');
      const parsed = JSON.parse(text) as { type?: unknown };
      if (parsed.type === 'service_account') {
        options.onInfo?.(`using the service account key in GOOGLE_APPLICATION_CREDENTIALS for ${registry}`);
        return { username: '_json_key', password: text };
      }
    } catch {
      // Not a readable service-account key: gcloud may still have credentials.
    }
  }
  const token = (await (options.runCommand ?? runCommand)('gcloud', ['auth', 'print-access-token'], env, options.signal))?.trim();
  if (token === undefined || token === '' || /\s/.test(token)) return undefined;
  options.onInfo?.(`using \`gcloud auth print-access-token\` for ${registry}`);
  return { username: 'oauth2accesstoken', password: token };
}

/** Credentials for `registry` (host[:port]) from docker's config, or undefined for anonymous access. */
export async function lookupCredentials(registry: string, options: CredentialLookupOptions = {}): Promise<Credentials | undefined> {
  const env = options.env ?? process.env;
  const config = (await readDockerConfig(dockerConfigPath(env, options.homedir ?? osHomedir()))) ?? {};
  const run = options.runHelper ?? runCredentialHelper;

  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (entry === null || typeof entry !== 'object' || !sameRegistry(key, registry)) continue;
    const creds = fromAuthEntry(entry);
    if (creds !== undefined) return creds;
  }
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (typeof helper === 'string' && helper !== '' && sameRegistry(key, registry)) {
      return fromHelper(helper, registry, run, env, options.signal);
    }
  }
  if (typeof config.credsStore === 'string' && config.credsStore !== '') {
    const stored = await fromHelper(config.credsStore, registry, run, env, options.signal);
    if (stored !== undefined) return stored;
  }
  return isGoogleRegistry(registry) ? fromGoogle(registry, env, options) : undefined;
}
