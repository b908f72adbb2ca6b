// Where the embedded registry listens and keeps its files: parsing `host:port`, telling loopback
// from everything else (only loopback may run without auth), and the default storage root,
// computed from values passed in rather than read from the process.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { TskoError } from '../../errors.js';

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

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(host);
  return false;
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
