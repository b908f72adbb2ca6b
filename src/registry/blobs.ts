// Blob reads and cross-repository mounts over the registry transport. A GET may be redirected to
// storage elsewhere (which gets no Authorization: the transport sends it to the registry only);
// every read is checked against its digest, a stream at its end.
import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import { TskoError } from '../errors.js';
import { repositoryScope } from './auth.js';
import { REDIRECT_STATUS, type Response, discard, header, httpError, networkError, readBody, sha256 } from './http.js';
import { type Repository, formatRepository } from './reference.js';
import type { RegistryTransport } from './transport.js';
import { cancelUpload } from './uploads.js';

const MAX_REDIRECTS = 5;

const blobOperation = (repo: Repository, digest: string): string => `GET blob ${formatRepository(repo)}@${digest}`;

export async function headBlob(transport: RegistryTransport, repo: Repository, digest: string, signal?: AbortSignal): Promise<boolean> {
  const operation = `HEAD blob ${formatRepository(repo)}@${digest}`;
  return transport.retrying(operation, signal, async () => {
    const res = await transport.send({
      registry: repo.registry,
      method: 'HEAD',
      target: `/v2/${repo.repository}/blobs/${digest}`,
      scopes: [repositoryScope(repo.repository, ['pull'])],
      operation,
      signal,
    });
    await discard(res);
    if (res.status === 200) {
      // A registry that answers for another blob than the one asked for is not trusted to hold it.
      const claimed = header(res, 'docker-content-digest');
      if (claimed !== undefined && claimed !== '' && claimed !== digest) {
        throw new TskoError('REGISTRY_DIGEST', `${repo.registry} answered ${operation} with digest ${claimed}`, { hint: 'the registry is not serving what it was asked for; refusing to trust it' });
      }
      return true;
    }
    if (res.status === 404) return false;
    // A redirect means the blob exists in storage elsewhere.
    if (REDIRECT_STATUS.has(res.status)) return true;
    throw await httpError(res, operation, repo.registry);
  });
}

/** GET of a blob, following redirects hop by hop so each one meets the transport's origin rule. */
async function getFollowingRedirects(transport: RegistryTransport, repo: Repository, digest: string, signal: AbortSignal | undefined): Promise<Response> {
  const operation = blobOperation(repo, digest);
  let target: string | URL = `/v2/${repo.repository}/blobs/${digest}`;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await transport.send({ registry: repo.registry, method: 'GET', target, scopes: [repositoryScope(repo.repository, ['pull'])], operation, signal });
    if (res.status === 200) return res;
    const loc = header(res, 'location');
    if (REDIRECT_STATUS.has(res.status) && loc !== undefined) {
      await discard(res);
      target = new URL(loc, res.url);
      continue;
    }
    throw await httpError(res, operation, repo.registry);
  }
  throw new TskoError('REGISTRY_HTTP', `${operation}: too many redirects`);
}

export async function getBlob(transport: RegistryTransport, repo: Repository, digest: string, signal?: AbortSignal): Promise<Buffer> {
  const operation = blobOperation(repo, digest);
  return transport.retrying(operation, signal, async () => {
    const res = await getFollowingRedirects(transport, repo, digest, signal);
    const bytes = await readBody(res, Number.MAX_SAFE_INTEGER, operation, repo.registry, signal);
    const actual = sha256(bytes);
    if (actual !== digest) throw new TskoError('REGISTRY_DIGEST', `${operation}: content has digest ${actual}`);
    return bytes;
  });
}

/** Passes bytes through and fails at the end when they do not hash to `digest`. */
function digestVerifier(digest: string, operation: string): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = `sha256:${hash.digest('hex')}`;
      done(actual === digest ? null : new TskoError('REGISTRY_DIGEST', `${operation}: content has digest ${actual}`));
    },
  });
}

/** A blob as a stream; only opening it is retried, and the digest can only be checked at the end. */
export async function openBlobStream(transport: RegistryTransport, repo: Repository, digest: string, signal?: AbortSignal): Promise<{ size: number; stream: Readable }> {
  const operation = blobOperation(repo, digest);
  const res = await transport.retrying(operation, signal, () => getFollowingRedirects(transport, repo, digest, signal));
  const size = Number(header(res, 'content-length') ?? -1);
  const verify = digestVerifier(digest, operation);
  res.body.on('error', (err) => verify.destroy(networkError(err, operation, repo.registry, signal)));
  // A reader that stops early (an abort) gives the connection back instead of holding it until a timeout.
  verify.once('close', () => {
    if (!res.body.destroyed) res.body.destroy();
  });
  return { size, stream: res.body.pipe(verify) };
}

/** Cross-repository mount. True when the registry mounted it (201); false when it wants an upload instead. */
export async function mountBlob(transport: RegistryTransport, target: Repository, digest: string, from: Repository, signal?: AbortSignal): Promise<boolean> {
  if (from.registry !== target.registry) return false;
  const operation = `mount blob ${digest} from ${from.repository} into ${formatRepository(target)}`;
  const query = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from.repository)}`;
  const scopes = [repositoryScope(target.repository, ['pull', 'push']), repositoryScope(from.repository, ['pull'])];
  return transport.retrying(operation, signal, async () => {
    const res = await transport.send({ registry: target.registry, method: 'POST', target: `/v2/${target.repository}/blobs/uploads/${query}`, headers: { 'content-length': '0' }, scopes, operation, signal });
    if (res.status === 201) {
      await discard(res);
      return true;
    }
    if (res.status === 202) {
      await discard(res);
      await cancelUpload({ transport, target, scopes, operation, signal }, res);
      return false;
    }
    // Registries that cannot mount (unsupported, source unknown or not readable) get a plain upload.
    if (res.status === 400 || res.status === 404 || res.status === 405) {
      await discard(res);
      return false;
    }
    throw await httpError(res, operation, target.registry);
  });
}
