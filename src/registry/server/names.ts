// The OCI distribution-spec grammar for repository names, tags and digests. Every path the
// server builds under its storage root comes from a string that passed one of these checks, so
// nothing a client sends can reach outside the root ("../x", "A/B", "%2e%2e" all fail here).

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_PATTERN = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Longest repository name accepted; the spec lets registries limit it, and 255 is common. */
export const MAX_NAME_LENGTH = 255;

export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex`, as the client spelled it (hex is lowercase by construction). */
  digest: string;
}

export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function isTag(reference: string): boolean {
  return TAG_PATTERN.test(reference);
}

/** True when the string has the general digest shape (any algorithm). */
export function looksLikeDigest(value: string): boolean {
  return DIGEST_PATTERN.test(value);
}

/** A digest this registry can verify (sha256 or sha512, lowercase hex of the right length), else undefined. */
export function parseDigest(value: string): ParsedDigest | undefined {
  const colon = value.indexOf(':');
  if (colon < 0) return undefined;
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(hex)) return undefined;
  return { algorithm, hex, digest: value };
}

/** An upload session id: the server only ever hands out UUIDs, so nothing else is looked up. */
export function isUploadId(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value);
}
