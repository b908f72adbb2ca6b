// Getting bytes into the blob store: stream a request body into an upload's data file while
// hashing it, then verify the digest and rename the fsynced file into its content address. A blob
// is visible only after that rename, so a crash or a bad digest never leaves a blob whose bytes
// don't match its name; two pushes of the same blob race harmlessly (same bytes, atomic rename).
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { dirname } from 'node:path';
import { isDiskFull, RegistryError, StorageFullError } from './errors.js';
import { freeBytes, fsyncFile, renameDurable, writeFileAtomic } from './fsutil.js';
import type { DigestAlgorithm, ParsedDigest } from './names.js';
import type { RegistryStore } from './store.js';

const WRITE_BATCH_BYTES = 1 << 20;
/**
 * While a large body streams in, its bytes are flushed to disk every this many bytes, in the same
 * queue as the writes: the fsync that makes the blob durable when the upload closes then has only
 * the tail left to flush, instead of the whole layer while the client waits for the PUT's answer.
 */
const FLUSH_EVERY_BYTES = 16 << 20;

/**
 * Running sha256 of an upload, kept in memory so closing an upload needn't re-read the file. It
 * only ever holds accepted chunks: a PATCH hashes into a copy, which replaces it when the chunk
 * is in the file, so a chunk that fails half-way (client gone, over the limit, disk full) leaves
 * the hash where the file is cut back to and the retried chunk continues from there.
 */
export interface UploadHashState {
  hash: Hash;
  offset: number;
}

export interface AppendOptions {
  /** Largest total size the upload may reach (bytes already in the file count). */
  maxBytes: number;
  /** In-memory hash to continue, when its offset equals the file's size. */
  state?: UploadHashState;
}

/**
 * The request body, chunk by chunk, without destroying the request when the reader stops early:
 * an error answer (413, a full disk) must still reach a client that sends its whole body before
 * reading, which a destroyed socket would turn into a reset.
 */
export function bodyChunks(req: IncomingMessage): AsyncIterable<Buffer> {
  return { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer> };
}

/**
 * Append the request body to `dataPath`. On any failure the file is cut back to its old size and
 * `state` is left as it was, so a half-received PATCH leaves the upload as it was. Returns the new
 * size.
 */
export async function appendBody(req: IncomingMessage, dataPath: string, start: number, options: AppendOptions): Promise<number> {
  const handle = await open(dataPath, 'r+');
  let offset = start;
  // Hash into a copy; it becomes the upload's hash only once every byte of this body is written.
  const hash = options.state?.hash.copy();
  // The body arrives in 64 KiB chunks; one write per chunk is a thread-pool round trip each (an
  // 8 MB layer: ~130 of them, most of a local push). Chunks are gathered up to WRITE_BATCH_BYTES
  // and written together with writev (no copy), one batch on disk while the next is received, so
  // memory stays bounded (two batches) and the disk and the socket work at the same time.
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let written = start;
  let writing: Promise<void> | undefined;
  let unflushed = 0;
  const flush = async () => {
    if (batchBytes === 0) return;
    const chunks = batch;
    const at = written;
    written += batchBytes;
    unflushed += batchBytes;
    batch = [];
    batchBytes = 0;
    await writing;
    const sync = unflushed >= FLUSH_EVERY_BYTES;
    if (sync) unflushed = 0;
    writing = writeAll(handle, chunks, at).then(() => (sync ? handle.datasync() : undefined));
    // Awaited at the next flush or the end; a failure in between is not an unhandled rejection.
    writing.catch(() => undefined);
  };
  try {
    for await (const chunk of bodyChunks(req)) {
      if (offset + chunk.length > options.maxBytes) {
        throw new RegistryError(413, 'SIZE_INVALID', `blob exceeds the registry's limit of ${options.maxBytes} bytes`);
      }
      hash?.update(chunk);
      offset += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH_BYTES) await flush();
    }
    await flush();
    await writing;
    if (req.readableAborted || !req.complete) throw new RegistryError(400, 'BLOB_UPLOAD_INVALID', 'request body ended early');
  } catch (err) {
    await writing?.catch(() => undefined);
    await handle.close().catch(() => undefined);
    await truncate(dataPath, start).catch(() => undefined);
    if (isDiskFull(err)) {
      const header = req.headers['content-length'];
      const known = header !== undefined && /^\d+$/.test(header);
      const declared = Number(header);
      // The whole chunk must fit again on retry: the file was cut back to where it started.
      throw new StorageFullError(dataPath, known ? { bytes: declared } : { bytes: offset - start, isMinimum: true }, await freeBytes(dirname(dataPath)), { cause: err });
    }
    throw err;
  }
  await handle.close();
  if (options.state && hash) {
    options.state.hash = hash;
    options.state.offset = offset;
  }
  return offset;
}

/**
 * Write `chunks` at `position`, all of them. A nearly full disk takes part of a write and says so
 * only in the count; the next write then fails with ENOSPC, which is the error the client must get.
 */
async function writeAll(handle: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let pending = chunks;
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, at);
    if (bytesWritten === 0) throw new Error('write made no progress');
    at += bytesWritten;
    let skip = bytesWritten;
    while (pending.length > 0 && skip >= pending[0]!.length) {
      skip -= pending[0]!.length;
      pending = pending.slice(1);
    }
    if (skip > 0) pending = [pending[0]!.subarray(skip), ...pending.slice(1)];
  }
}

export async function hashFile(path: string, algorithm: DigestAlgorithm): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

/**
 * Verify the upload file's digest and move it to the blob's content address, then link the blob
 * to the repository. A mismatch deletes the file and throws DIGEST_INVALID: nothing is stored.
 */
export async function commitBlob(
  store: RegistryStore,
  repository: string,
  dataPath: string,
  expected: ParsedDigest,
  state: UploadHashState | undefined,
): Promise<{ size: number }> {
  const { size } = await stat(dataPath);
  const actual =
    state && state.offset === size && expected.algorithm === 'sha256'
      ? state.hash.copy().digest('hex')
      : await hashFile(dataPath, expected.algorithm);
  if (actual !== expected.hex) {
    await unlink(dataPath).catch(() => undefined);
    throw new RegistryError(400, 'DIGEST_INVALID', 'provided digest did not match uploaded content', {
      detail: { expected: expected.digest, actual: `${expected.algorithm}:${actual}` },
    });
  }
  const existing = await store.statBlob(expected);
  if (existing) {
    // Same content is already stored; refresh it so gc's grace period covers this push.
    await unlink(dataPath).catch(() => undefined);
    await store.touchBlob(expected);
  } else {
    await fsyncFile(dataPath);
    await renameDurable(dataPath, store.blobPath(expected));
  }
  await store.linkBlob(repository, expected);
  return { size };
}

/** Write small in-memory bytes (a manifest) to their content address through a temp file. */
export async function storeBytes(store: RegistryStore, digest: ParsedDigest, bytes: Uint8Array): Promise<void> {
  if (await store.statBlob(digest)) {
    await store.touchBlob(digest);
    return;
  }
  await writeFileAtomic(store.tmpDir, store.blobPath(digest), bytes);
}
