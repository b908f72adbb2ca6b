// Saving and erasing registry credentials the way `docker login` and `docker logout` do, so docker,
// skopeo, ko and tsko all read what either wrote: config.json in $DOCKER_CONFIG or ~/.docker,
// `auths[key].auth` = base64(user:password) with every other key kept, written 0600 through a
// temp file and a rename; or, when a credHelper for the registry or a credsStore is configured,
// the secret goes to `docker-credential-<name> store` and config.json keeps an empty entry.
// Reads the environment only through `env`.
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { TskoError } from '../errors.js';
import { execCredentialHelper } from './credential-helper.js';
import { redact } from '../redact.js';
import type { Credentials } from './auth.js';
import { DOCKER_HUB_CONFIG_KEY, configKeyHost, dockerConfigPath, isDockerHubHost } from './credentials.js';

/** Runs `docker-credential-<helper> <verb>` with `input` on stdin; rejects with a one-line reason. */
export type HelperCommandRunner = (helper: string, verb: 'store' | 'erase', input: string, env: Record<string, string | undefined>, signal?: AbortSignal) => Promise<void>;

export interface CredentialStoreOptions {
  env: Record<string, string | undefined>;
  homedir: string;
  runHelper?: HelperCommandRunner;
  signal?: AbortSignal;
}

export interface StoreResult {
  configFile: string;
  /** The helper that holds the secret; undefined when config.json holds it. */
  helper: string | undefined;
}

export interface EraseResult {
  configFile: string;
  /** False when neither config.json nor a helper had anything for the registry. */
  found: boolean;
}

type JsonObject = Record<string, unknown>;

/**
 * The config.json key for a registry named on the command line, as docker writes it: host[:port]
 * (a scheme or path is dropped), and `https://index.docker.io/v1/` for Docker Hub.
 */
export function loginServerKey(server: string): string {
  const host = configKeyHost(server.trim());
  if (host === '') throw new TskoError('USAGE', `"${server}" is not a registry host`);
  return isDockerHubHost(host) ? DOCKER_HUB_CONFIG_KEY : host;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readConfigObject(path: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new TskoError('REGISTRY_AUTH', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TskoError('REGISTRY_AUTH', `malformed docker config ${path}: ${(err as Error).message}`, { hint: 'fix or remove the file; tsko will not overwrite what it cannot read' });
  }
  if (!isObject(parsed)) throw new TskoError('REGISTRY_AUTH', `malformed docker config ${path}: not a JSON object`);
  return parsed;
}

/** Writes through a temp file and a rename, so a crash never leaves half a config; 0600 because it holds secrets. */
async function writeConfigObject(path: string, config: JsonObject): Promise<void> {
  // A symlinked config.json (dotfiles repos) is written where it points, as docker does.
  const target = await realpath(path).catch(() => path);
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  try {
    await writeFileAtomic(target, JSON.stringify(config, null, '\t'), { mode: 0o600 });
  } catch (err) {
    throw new TskoError('REGISTRY_AUTH', `cannot write ${target}: ${(err as Error).message}`, { cause: err });
  }
}

/** The helper docker would use for this key: its credHelpers entry, else the credsStore. */
function helperFor(config: JsonObject, key: string): string | undefined {
  const host = configKeyHost(key);
  if (isObject(config.credHelpers)) {
    for (const [name, helper] of Object.entries(config.credHelpers)) {
      if (typeof helper === 'string' && helper !== '' && configKeyHost(name) === host) return helper;
    }
  }
  return typeof config.credsStore === 'string' && config.credsStore !== '' ? config.credsStore : undefined;
}

function authsOf(config: JsonObject): JsonObject {
  if (!isObject(config.auths)) config.auths = {};
  return config.auths as JsonObject;
}

export const runHelperCommand: HelperCommandRunner = async (helper, verb, input, env, signal) => {
  await execCredentialHelper(helper, verb, input, env, signal);
};

/** Saves credentials for `server` (as given to `tsko login`) where docker would. */
export async function storeCredentials(server: string, creds: Credentials, options: CredentialStoreOptions): Promise<StoreResult> {
  const key = loginServerKey(server);
  const path = dockerConfigPath(options.env, options.homedir);
  const config = await readConfigObject(path);
  const helper = helperFor(config, key);
  if (helper !== undefined) {
    const input = JSON.stringify({ ServerURL: key, Username: creds.username, Secret: creds.password });
    try {
      await (options.runHelper ?? runHelperCommand)(helper, 'store', input, options.env, options.signal);
    } catch (err) {
      // A helper may echo what it was given; the secret must not travel on in its message.
      if (err instanceof TskoError) throw new TskoError(err.code, redact(err.message.split(creds.password).join('[REDACTED]')), err.hint !== undefined ? { hint: err.hint } : {});
      throw err;
    }
    // docker keeps an empty entry, so `docker info` and friends still list the registry.
    authsOf(config)[key] = {};
  } else {
    authsOf(config)[key] = { auth: Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64') };
  }
  await writeConfigObject(path, config);
  return { configFile: path, helper };
}

/**
 * Removes what `tsko login`/`docker login` saved for `server`: the config.json entries under the
 * key and its older spellings (http://, https://), and the helper's copy.
 */
export async function eraseCredentials(server: string, options: CredentialStoreOptions): Promise<EraseResult> {
  const key = loginServerKey(server);
  const path = dockerConfigPath(options.env, options.homedir);
  const config = await readConfigObject(path);
  const keys = key === DOCKER_HUB_CONFIG_KEY ? [key] : [key, `http://${key}`, `https://${key}`];
  const auths = isObject(config.auths) ? config.auths : {};
  const inFile = keys.filter((k) => k in auths);
  const helper = helperFor(config, key);
  if (helper !== undefined) {
    await (options.runHelper ?? runHelperCommand)(helper, 'erase', key, options.env, options.signal);
  }
  if (inFile.length > 0) {
    for (const k of inFile) delete auths[k];
    await writeConfigObject(path, config);
  }
  return { configFile: path, found: inFile.length > 0 || helper !== undefined };
}
