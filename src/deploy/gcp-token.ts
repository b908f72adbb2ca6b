// Google access tokens for the Cloud Run Admin API, from the first source that has one:
// Application Default Credentials (google-auth-library), else `gcloud auth print-access-token`,
// else CLOUDSDK_AUTH_ACCESS_TOKEN. The source is said once (an info event), never the token.
// refresh(token) drops what is cached, for a token the API rejected as expired — once, however
// many calls made together were rejected with it; concurrent get()s share one lookup.
import { execFile } from 'node:child_process';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';

export type TokenSourceName = 'application default credentials' | 'gcloud' | 'CLOUDSDK_AUTH_ACCESS_TOKEN';

export interface AccessToken {
  token: string;
  source: TokenSourceName;
}

export interface GcpTokenOptions {
  /** Try ADC first (default true). */
  adc?: boolean;
  /** The gcloud binary (default `gcloud`); false skips it. */
  gcloud?: string | false;
  /** Environment for gcloud (the CLI's). */
  env?: Record<string, string>;
  /** CLOUDSDK_AUTH_ACCESS_TOKEN's value, when set. */
  envToken?: string;
  events: EventBus;
}

export interface TokenSource {
  get(signal?: AbortSignal): Promise<AccessToken>;
  /** Forgets the cached token (only if it is still `rejected`, when given); the next get() asks its source again. */
  refresh(rejected?: string): void;
  /** Who the token speaks for, best effort, for 401/403 messages. */
  identity(): Promise<string | undefined>;
}

/** No source had a token: the preflight reports it as NO_CREDENTIALS. */
export class NoCredentialsError extends TskoError {
  constructor(message: string) {
    super('CLOUDRUN', message, { hint: 'run `gcloud auth application-default login` (or `gcloud auth login`), or set CLOUDSDK_AUTH_ACCESS_TOKEN' });
  }
}

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
/** gcloud's tokens live an hour; ask again well before. */
const GCLOUD_TOKEN_TTL_MS = 30 * 60_000;

type GoogleAuthModule = typeof import('google-auth-library');

export function createTokenSource(options: GcpTokenOptions): TokenSource {
  const gcloud = options.gcloud === undefined ? 'gcloud' : options.gcloud;
  let chosen: TokenSourceName | undefined;
  let cached: { token: AccessToken; until: number } | undefined;
  let auth: InstanceType<GoogleAuthModule['GoogleAuth']> | undefined;
  let announced = false;

  const fromAdc = async (): Promise<string> => {
    const { GoogleAuth } = await import('google-auth-library');
    auth ??= new GoogleAuth({ scopes: [SCOPE] });
    const client = await auth.getClient();
    const { token } = await client.getAccessToken();
    if (!token) throw new Error('no token');
    return token;
  };

  const fromGcloud = async (signal?: AbortSignal): Promise<string> => {
    if (!gcloud) throw new Error('not used');
    const out = await run(gcloud, ['auth', 'print-access-token', '--quiet'], options.env, signal);
    const token = out.trim().split('\n').pop()?.trim();
    if (!token) throw new Error('printed no token');
    return token;
  };

  const attempt = async (source: TokenSourceName, signal?: AbortSignal): Promise<string> => {
    if (source === 'application default credentials') return fromAdc();
    if (source === 'gcloud') return fromGcloud(signal);
    if (!options.envToken) throw new Error('not set');
    return options.envToken;
  };

  const order: TokenSourceName[] = [
    ...(options.adc === false ? [] : (['application default credentials'] as const)),
    ...(gcloud ? (['gcloud'] as const) : []),
    'CLOUDSDK_AUTH_ACCESS_TOKEN',
  ];

  let inflight: Promise<AccessToken> | undefined;
  /** The token last handed out, so a refresh for one already replaced does nothing. */
  let current: string | undefined;

  const lookup = async (signal?: AbortSignal): Promise<AccessToken> => {
    const failures: string[] = [];
    for (const source of chosen ? [chosen] : order) {
      try {
        const token = await attempt(source, signal);
        chosen = source;
        current = token;
        cached = { token: { token, source }, until: Date.now() + GCLOUD_TOKEN_TTL_MS };
        if (!announced) {
          announced = true;
          options.events.emit({ type: 'log', level: 'info', message: `Cloud Run: using an access token from ${source}` });
        }
        return cached.token;
      } catch (err) {
        throwIfAborted(signal);
        // Not `NAME: not set`: the redaction would take "not" for the token's value.
        failures.push(source === 'CLOUDSDK_AUTH_ACCESS_TOKEN' ? `${source} is not set` : `${source}: ${firstLine(err)}`);
      }
    }
    throw new NoCredentialsError(`no Google access token (${failures.join('; ')})`);
  };

  return {
    get(signal) {
      // ADC refreshes its own token before expiry, so it is asked each time (from memory).
      if (cached && cached.token.source !== 'application default credentials' && Date.now() < cached.until) return Promise.resolve(cached.token);
      inflight ??= lookup(signal).finally(() => {
        inflight = undefined;
      });
      return inflight;
    },
    refresh(rejected) {
      // Calls made together that were all refused the same token refresh it once.
      if (rejected !== undefined && rejected !== current) return;
      current = undefined;
      cached = undefined;
      // A new GoogleAuth reads its credentials again rather than trusting its cached token.
      auth = undefined;
    },
    async identity() {
      try {
        if (chosen === 'application default credentials' && auth) {
          const credentials = await auth.getCredentials();
          return credentials.client_email;
        }
        if (chosen === 'gcloud' && gcloud) {
          return (await run(gcloud, ['config', 'get-value', 'account', '--quiet'], options.env)).trim() || undefined;
        }
      } catch {
        // Best effort: the message says the token's source anyway.
      }
      return undefined;
    },
  };
}

function run(file: string, args: string[], env: Record<string, string> | undefined, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 60_000, maxBuffer: 1024 * 1024, ...(signal ? { signal } : {}) }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        reject(new Error(code === 'ENOENT' ? `${file} is not installed` : stderr.toString().trim().split('\n')[0] || err.message));
      } else resolve(stdout.toString());
    });
  });
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).trim().split('\n')[0] ?? '';
}
