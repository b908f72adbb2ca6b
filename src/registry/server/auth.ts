// Access control for a registry bound beyond loopback: an htpasswd file (bcrypt entries only, as
// docker-registry requires) or a single shared token. Clients send Basic credentials (any user
// name with the token as password also works in token mode) or `Authorization: Bearer <token>`.
// Checked credentials are cached by their hash so bcrypt's cost is paid once per client, not per request.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TskoError } from '../../errors.js';

export type RegistryAuth =
  | { kind: 'htpasswd'; users: ReadonlyMap<string, string> }
  | { kind: 'token'; token: string };

export const AUTH_REALM = 'tsko-registry';

/** Parse htpasswd text: `user:$2y$…` lines; anything but bcrypt is refused (it would be a weak hash). */
export function parseHtpasswd(text: string, source = 'htpasswd'): RegistryAuth {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[abxy]?\$\d\d\$/.test(hash)) {
      throw new TskoError('REGISTRY_SERVE', `${source}:${index + 1}: not a "user:bcrypt-hash" line`, {
        hint: 'create entries with `htpasswd -Bbn USER PASSWORD`',
      });
    }
    users.set(user, hash);
  });
  if (users.size === 0) throw new TskoError('REGISTRY_SERVE', `${source} has no users`);
  return { kind: 'htpasswd', users };
}

export async function loadHtpasswd(path: string): Promise<RegistryAuth> {
  return parseHtpasswd(await readFileForAuth(path), path);
}

export async function loadTokenFile(path: string): Promise<RegistryAuth> {
  const token = (await readFileForAuth(path)).trim();
  if (token.length < 16) throw new TskoError('REGISTRY_SERVE', `${path}: token must be at least 16 characters`);
  return { kind: 'token', token };
}

async function readFileForAuth(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new TskoError('REGISTRY_SERVE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export interface Authenticator {
  /** True when the Authorization header grants access. */
  check(authorization: string | undefined): Promise<boolean>;
  readonly challenge: string;
}

export function createAuthenticator(auth: RegistryAuth): Authenticator {
  // Keys are hashes of accepted headers, never the secrets themselves.
  const accepted = new Set<string>();
  const remember = (header: string) => {
    if (accepted.size > 1000) accepted.clear();
    accepted.add(createHash('sha256').update(header).digest('hex'));
  };
  return {
    challenge: `Basic realm="${AUTH_REALM}"`,
    async check(header) {
      if (!header) return false;
      const key = createHash('sha256').update(header).digest('hex');
      if (accepted.has(key)) return true;
      const space = header.indexOf(' ');
      const scheme = header.slice(0, space).toLowerCase();
      const value = header.slice(space + 1).trim();
      let ok = false;
      if (scheme === 'bearer') {
        ok = auth.kind === 'token' && sameSecret(value, auth.token);
      } else if (scheme === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon >= 0) {
          const user = decoded.slice(0, colon);
          const password = decoded.slice(colon + 1);
          if (auth.kind === 'token') ok = sameSecret(password, auth.token);
          else {
            const hash = auth.users.get(user);
            // Loaded on first use: a registry without htpasswd auth never needs it.
            const { default: bcrypt } = await import('bcryptjs');
            ok = hash !== undefined && (await bcrypt.compare(password, hash));
          }
        }
      }
      if (ok) remember(header);
      return ok;
    },
  };
}
