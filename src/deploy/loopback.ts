// A cluster or Cloud Run elsewhere cannot pull from 127.0.0.1: this tells whether an image's
// registry and a target's API endpoint are on this machine, so a remote target can refuse a
// loopback registry up front instead of failing later with ImagePullBackOff.
import { TskoError } from '../errors.js';

/** True for localhost, 127.0.0.0/8 and ::1 (with or without a port, brackets or scheme). */
export function isLoopbackHost(hostOrUrl: string): boolean {
  let host = hostOrUrl.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) {
    try {
      host = new URL(host).hostname;
    } catch {
      return false;
    }
  } else {
    host = host.split('/')[0] ?? host;
    const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
    if (bracket) host = bracket[1] as string;
    else if ((host.match(/:/g) ?? []).length === 1) host = host.slice(0, host.indexOf(':'));
  }
  host = host.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The registry host of `registry/repo[@digest|:tag]` or of a KO_DOCKER_REPO value. */
export function registryHost(reference: string): string {
  return reference.split('/')[0] ?? reference;
}

/**
 * Throws when images live in a loopback registry but the target's endpoint is elsewhere. `what`
 * names the endpoint (`cluster https://…`), `fix` says what to set.
 */
export function assertRegistryReachable(registry: string, endpoint: string, what: string, fix: string): void {
  if (!isLoopbackHost(registry) || isLoopbackHost(endpoint)) return;
  throw new TskoError('USAGE', `images go to ${registryHost(registry)}, which ${what} cannot pull from (it is this machine's loopback address)`, {
    hint: fix,
  });
}
