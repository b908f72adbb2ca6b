// Content digests: `sha256:<64 hex>`, the only algorithm tsko writes.
import { createHash } from 'node:crypto';

export type Digest = `sha256:${string}`;

const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function isDigest(value: string): value is Digest {
  return DIGEST_PATTERN.test(value);
}

export function digestHex(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}
