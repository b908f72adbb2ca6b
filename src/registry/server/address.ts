// Where the embedded registry listens and keeps its files: parsing `host:port`, telling loopback
// from everything else (only loopback may run without auth), and the default storage root,
// computed from values passed in rather than read from the process.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { TskoError } from '../../errors.js';

// Only a loopback bind may run without auth; the rule is shared with the client and deploy targets.

export const DEFAULT_REGISTRY_ADDR = '127.0.0.1:5001';

export interface ListenAddress {
  host: string;
  port: number;
}

/** `host:port`, `[v6]:port` or `:port` (loopback); port 0 asks the OS for a free one. */
export function parseListenAddress(addr: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new TskoError('REGISTRY_SERVE', `invalid registry address ${JSON.stringify(addr)}`, { hint: 'use HOST:PORT, e.g. 127.0.0.1:5001' });
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '127.0.0.1' : m[2]);
  return { host, port };
}

/** `host:port` as a URL authority (brackets around IPv6). */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `$XDG_CACHE_HOME/tsko/registry`, else `<home>/.cache/tsko/registry`. */
export function defaultRegistryRoot(env: NodeJS.ProcessEnv, homedir: string): string {
  const cache = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir, '.cache');
  return join(cache, 'tsko', 'registry');
}
