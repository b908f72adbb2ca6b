// Whether a host names this machine. Three places ask, and must agree: the registry client (plain
// http is allowed to a local registry), the deploy targets (a remote cluster cannot pull from
// 127.0.0.1) and the embedded registry (only a loopback bind may run without auth).
import { isIP } from 'node:net';

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const BRACKETED = /^\[([^\]]+)\](?::\d*)?$/;

/**
 * The host in `host`, `host:port`, `[v6]:port`, bare `v6`, `host/path` or `scheme://host/…`,
 * without brackets; undefined when a URL does not parse.
 */
function hostOf(hostOrUrl: string): string | undefined {
  const text = hostOrUrl.trim();
  if (SCHEME.test(text)) {
    try {
      return new URL(text).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return undefined;
    }
  }
  const authority = text.split('/')[0] ?? text;
  const bracketed = BRACKETED.exec(authority);
  if (bracketed !== null) return bracketed[1];
  const colons = authority.split(':').length - 1;
  // One colon is a port; more can only be a bare IPv6 literal.
  return colons === 1 ? authority.slice(0, authority.indexOf(':')) : authority;
}

/** ::1 and IPv4-mapped 127.0.0.0/8, in any spelling the URL parser accepts. */
function isLoopbackIpv6(address: string): boolean {
  let canonical: string;
  try {
    canonical = new URL(`http://[${address}]/`).hostname;
  } catch {
    return false;
  }
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/** True for localhost, *.localhost, 127.0.0.0/8 and ::1, with or without port, brackets, path or scheme. */
export function isLoopbackHost(hostOrUrl: string): boolean {
  const host = hostOf(hostOrUrl)?.toLowerCase();
  if (host === undefined || host === '') return false;
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return isLoopbackIpv6(host);
  return false;
}
