// A cluster or Cloud Run elsewhere cannot pull from 127.0.0.1: this tells whether an image's
// registry and a target's API endpoint are on this machine, so a remote target can refuse a
// loopback registry up front instead of failing later with ImagePullBackOff.
import { TskoError } from '../errors.js';
import { isLoopbackHost } from '../net/loopback.js';

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
