// The base resolver shares one resolution per base and platform: a caller that gives up (a save
// superseded while the base was still being fetched) stops waiting at once, but the resolution it
// started goes on for the next caller instead of failing it too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TskoError } from '../../src/errors.js';
import { sha256 } from '../../src/image/digest.js';
import { OCI_CONFIG, OCI_MANIFEST } from '../../src/image/media-types.js';
import { BaseResolver } from '../../src/publish/base.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { makeTempDir } from '../support/tmp.js';

const PLATFORM = { os: 'linux', architecture: 'amd64' };

/** A registry that answers slowly, and only once per manifest (a second fetch would show the sharing broke). */
function slowRegistry(delayMs: number) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length }, layers: [] }));
  let manifestFetches = 0;
  // Like the real client, each request stops when the signal it was given aborts.
  const later = <T>(value: T, signal: AbortSignal | undefined) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => resolve(value), delayMs);
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(new TskoError('ABORTED', 'aborted'));
      });
    });
  const client = {
    headManifest: (_ref: unknown, signal?: AbortSignal) => later({ digest: sha256(manifest), mediaType: OCI_MANIFEST, size: manifest.length }, signal),
    getManifest: (_ref: unknown, signal?: AbortSignal) => {
      manifestFetches++;
      return later({ digest: sha256(manifest), mediaType: OCI_MANIFEST, size: manifest.length, bytes: manifest }, signal);
    },
    getBlob: (_repo: unknown, _digest: unknown, signal?: AbortSignal) => later(config, signal),
  } as unknown as RegistryClient;
  return { client, fetches: () => manifestFetches, digest: sha256(manifest) };
}

describe('base resolver', () => {
  it('lets a caller that aborts stop waiting, while the shared resolution goes on for the next caller', async (t) => {
    const registry = slowRegistry(30);
    const bases = new BaseResolver({ client: registry.client, cacheDir: await makeTempDir('bases', t) });
    const superseded = new AbortController();
    const first = bases.resolve('registry.test/base:latest', PLATFORM, superseded.signal);
    const next = bases.resolve('registry.test/base:latest', PLATFORM, new AbortController().signal);
    superseded.abort(new TskoError('ABORTED', 'superseded by a newer save'));
    await assert.rejects(first, (err: unknown) => err instanceof TskoError && err.code === 'ABORTED');
    const base = await next;
    assert.equal(base.digest, registry.digest);
    assert.equal(registry.fetches(), 1, 'one resolution, shared');
  });
});
