// What `tsko login` and `tsko logout` do once their flags are parsed (login.ts registers them):
// check the credentials against the registry, then save or erase them where docker does.
import { resolveConfig } from '../config/resolve.js';
import { TskoError } from '../errors.js';
import { createEventBus } from '../events.js';
import { redact } from '../redact.js';
import { RegistryClient } from '../registry/client.js';
import { eraseCredentials, loginServerKey, storeCredentials } from '../registry/credential-store.js';
import { DOCKER_HUB_CONFIG_KEY, lookupCredentials, type Credentials } from '../registry/credentials.js';
import { DOCKER_HUB_REGISTRY } from '../registry/reference.js';
import { createPlainReporter } from '../../ui/plain.js';
import type { LoginFlags } from './login.js';

const MAX_STDIN_BYTES = 64 * 1024;

function say(line: string): void {
  process.stderr.write(redact(line) + '\n');
}

/** Where the API of the registry behind a config.json key answers. */
function apiHost(key: string): string {
  return key === DOCKER_HUB_CONFIG_KEY ? DOCKER_HUB_REGISTRY : key;
}

async function readPasswordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN_BYTES) throw new TskoError('USAGE', `--password-stdin read more than ${MAX_STDIN_BYTES} bytes; expected one password`);
    chunks.push(chunk);
  }
  // docker trims exactly one trailing newline (and a CR before it), nothing else.
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '').replace(/\r$/, '');
}

export async function logout(server: string): Promise<void> {
  const config = await resolveConfig({});
  const key = loginServerKey(server);
  const result = await eraseCredentials(server, { env: config.env, homedir: config.homedir });
  if (!result.found) {
    say(`Not logged in to ${key}`);
    return;
  }
  process.stdout.write(`Removing login credentials for ${key}\n`);
}

export async function login(server: string, flags: LoginFlags, verbose: boolean): Promise<void> {
  if (flags.password !== undefined && flags.passwordStdin) throw new TskoError('USAGE', '--password and --password-stdin are mutually exclusive');
  if (flags.passwordStdin && !flags.username) throw new TskoError('USAGE', '--password-stdin needs --username');
  if (flags.password !== undefined) say('WARNING! Using --password via the CLI is insecure. Use --password-stdin.');

  const config = await resolveConfig({ ...(flags.config ? { configFile: flags.config } : {}) });
  const key = loginServerKey(server);
  const registry = apiHost(key);

  let creds: Credentials | undefined;
  let saved = false;
  if (flags.username === undefined) {
    // Like docker: with nothing given, check what is already saved.
    creds = await lookupCredentials(registry, { env: config.env, homedir: config.homedir });
    if (creds === undefined) {
      throw new TskoError('USAGE', `no saved credentials for ${key}`, { hint: `echo "$PASSWORD" | tsko login ${server} -u USER --password-stdin` });
    }
    saved = true;
    say('Authenticating with existing credentials...');
  } else {
    const password = flags.passwordStdin ? await readPasswordFromStdin() : flags.password;
    if (password === undefined) {
      throw new TskoError('USAGE', `no password for ${flags.username}`, { hint: `pipe it in: echo "$PASSWORD" | tsko login ${server} -u ${flags.username} --password-stdin` });
    }
    if (password === '') throw new TskoError('USAGE', 'the password is empty');
    creds = { username: flags.username, password };
  }

  const events = createEventBus();
  events.subscribe(createPlainReporter({ write: say, verbose }));
  const given = creds;
  const client = new RegistryClient({
    credentials: async () => given,
    insecureRegistries: flags.insecureRegistry === true ? true : [...config.registry.insecure],
    caCertificates: [...config.registry.caCertificates],
    env: config.env,
    homedir: config.homedir,
    events,
    userAgent: 'tsko/0.1',
  });
  try {
    await client.checkAuth(registry, AbortSignal.timeout(120_000));
  } catch (err) {
    if (saved && err instanceof TskoError && err.code === 'REGISTRY_AUTH') {
      throw new TskoError('REGISTRY_AUTH', err.message, { hint: `log in again: echo "$PASSWORD" | tsko login ${server} -u ${creds.username} --password-stdin` });
    }
    throw err;
  } finally {
    await client.close();
  }

  if (!saved) {
    const stored = await storeCredentials(server, creds, { env: config.env, homedir: config.homedir });
    if (stored.helper === undefined) {
      say(`WARNING! Your password is stored unencrypted in ${stored.configFile}; configure a credential helper (credsStore) to avoid that.`);
    } else if (verbose) {
      say(`Stored the credentials with docker-credential-${stored.helper}`);
    }
  }
  process.stdout.write('Login Succeeded\n');
}
