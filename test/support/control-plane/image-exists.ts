// Whether an image reference's manifest exists in its registry, for the stand-in kubelet's default
// "pull": a HEAD of /v2/<repo>/manifests/<tag|digest>, over http then https, only for registries on
// 127.0.0.1 or localhost (tests never leave the machine; anything else counts as not pullable).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface ImageReference {
  host: string;
  repository: string;
  /** A tag or a digest. */
  reference: string;
}

export function parseImageReference(image: string): ImageReference {
  let rest = image;
  let host = 'docker.io';
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      host = first;
      rest = rest.slice(slash + 1);
    }
  }
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // With the host gone, a colon can only start the tag; a digest beside a tag wins (as in a pull).
  let tag = 'latest';
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { host, repository: rest, reference: digest ?? tag };
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '');
  return name === '127.0.0.1' || name === 'localhost';
}

function head(url: string, signal?: AbortSignal): Promise<number | undefined> {
  return new Promise((resolve) => {
    const https = url.startsWith('https:');
    // Test registries use throwaway self-signed certs; this check asks only "is it there".
    const req = (https ? httpsRequest : httpRequest)(
      url,
      { method: 'HEAD', headers: { Accept: MANIFEST_TYPES }, timeout: 5000, ...(https ? { rejectUnauthorized: false } : {}), ...(signal ? { signal } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** True when the manifest is served with 200 by a loopback registry. */
export async function imageExists(image: string, signal?: AbortSignal): Promise<boolean> {
  const ref = parseImageReference(image);
  if (!isLoopback(ref.host)) return false;
  const path = `/v2/${ref.repository}/manifests/${ref.reference}`;
  for (const scheme of ['http', 'https']) {
    const status = await head(`${scheme}://${ref.host}${path}`, signal);
    // A Go TLS server answers plain HTTP with 400: then ask it over https.
    if (status !== undefined && !(scheme === 'http' && status === 400)) return status === 200;
  }
  return false;
}
