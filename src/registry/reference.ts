// Image references as the distribution spec and docker spell them: `[host[:port]/]path[:tag][@digest]`.
// Parsing normalises to the form used on the wire (Docker Hub → index.docker.io + `library/`), so
// every other module can compare and format references without knowing these rules.
import { TskoError } from '../errors.js';

export interface Repository {
  /** host[:port] as used on the wire. */
  registry: string;
  /** The repository path, e.g. `library/alpine`, `proj/app`. */
  repository: string;
}

export interface Reference extends Repository {
  tag?: string;
  /** `sha256:<64 hex>`. */
  digest?: string;
}

export const DOCKER_HUB_REGISTRY = 'index.docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io']);

// distribution/reference grammar.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const PORT = /^[0-9]{1,5}$/;
const IPV6_HOST = /^\[[0-9a-fA-F:.]+\]$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME_LENGTH = 255;

function fail(input: string, why: string): never {
  throw new TskoError('REFERENCE', `invalid image reference "${input}": ${why}`);
}

function validRegistry(host: string): boolean {
  let name = host;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) return false;
    name = host.slice(0, close + 1);
    const rest = host.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return false;
      port = rest.slice(1);
    }
    if (!IPV6_HOST.test(name)) return false;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
    if (name === '' || !name.split('.').every((c) => DOMAIN_COMPONENT.test(c))) return false;
  }
  return port === undefined || PORT.test(port);
}

/** Splits a name (no tag/digest) into registry and repository, applying docker's defaults. */
function splitName(input: string, name: string): Repository {
  if (name === '') fail(input, 'empty name');
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  // docker's rule: the first component is a registry when it looks like a host.
  const hasRegistry = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['));
  let registry = hasRegistry ? first : DOCKER_HUB_REGISTRY;
  let repository = hasRegistry ? name.slice(slash + 1) : name;
  if (hasRegistry) {
    if (!validRegistry(registry)) fail(input, `bad registry host "${registry}"`);
    if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) registry = DOCKER_HUB_REGISTRY;
  }
  if (repository === '') fail(input, 'missing repository path');
  if (registry === DOCKER_HUB_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  for (const component of repository.split('/')) {
    if (component === '') fail(input, 'empty path component');
    if (!PATH_COMPONENT.test(component)) {
      if (component.toLowerCase() !== component) fail(input, 'repository name must be lowercase');
      fail(input, `bad path component "${component}"`);
    }
  }
  if (repository.length > MAX_NAME_LENGTH) fail(input, `repository name longer than ${MAX_NAME_LENGTH} characters`);
  return { registry, repository };
}

/**
 * Parses `[host[:port]/]path[:tag][@sha256:…]`. Without tag and digest the tag is
 * `options.defaultTag` (default `latest`); pass `defaultTag: ''` to leave it unset.
 */
export function parseReference(input: string, options: { defaultTag?: string } = {}): Reference {
  const text = input.trim();
  if (text === '') fail(input, 'empty reference');
  let rest = text;
  let digest: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(input, `bad digest "${digest}" (want sha256:<64 lowercase hex>)`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(input, `bad tag "${tag}"`);
  }
  const repo = splitName(input, rest);
  const ref: Reference = { ...repo };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) {
    const defaultTag = options.defaultTag ?? 'latest';
    if (defaultTag !== '') ref.tag = defaultTag;
  }
  return ref;
}

/** Parses a repository such as a KO_DOCKER_REPO value (`127.0.0.1:5000/x`, `gcr.io/proj`); no tag or digest. */
export function parseRepository(input: string): Repository {
  const text = input.trim().replace(/\/+$/, '');
  if (text.includes('@')) fail(input, 'a repository takes no digest');
  const lastSlash = text.lastIndexOf('/');
  if (text.lastIndexOf(':') > lastSlash && (lastSlash >= 0 || !/^[^:]+:[0-9]+$/.test(text))) {
    fail(input, 'a repository takes no tag');
  }
  // A bare host (`gcr.io`, `localhost:5000`) is not a repository.
  if (lastSlash < 0 && (text.includes('.') || text.includes(':') || text === 'localhost')) {
    fail(input, 'missing repository path after the registry host');
  }
  return splitName(input, text);
}

export function formatRepository(repo: Repository): string {
  return `${repo.registry}/${repo.repository}`;
}

/** `host/repo[:tag][@sha256:…]`. */
export function formatReference(ref: Reference): string {
  let out = formatRepository(ref);
  if (ref.tag !== undefined && ref.tag !== '') out += `:${ref.tag}`;
  if (ref.digest !== undefined && ref.digest !== '') out += `@${ref.digest}`;
  return out;
}

/** The host part of `host[:port]`, brackets kept off IPv6 literals. */
export function registryHostname(registry: string): string {
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    return close < 0 ? registry : registry.slice(1, close);
  }
  const colon = registry.indexOf(':');
  return colon < 0 ? registry : registry.slice(0, colon);
}

/** Registries tsko talks plain http to: the one loopback rule, under the name registry code uses. */
