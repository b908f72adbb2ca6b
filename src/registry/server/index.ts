// The embedded OCI registry: start one (`startRegistryServer`), or reuse the one already on the
// default address (`ensureEmbeddedRegistry`), plus retention (`retainLatest`, `gcRegistry`).
// The server never prints; failures of its own go to `onError` and start problems are TskoErrors.
import type { Server } from 'node:http';
import { abortError } from '../../abort.js';
import { TskoError } from '../../errors.js';
import { isLoopbackHost } from '../../net/loopback.js';
import { DEFAULT_REGISTRY_ADDR, formatAddress, parseListenAddress } from './address.js';
import { adoptBlob, type BlobSource } from './adopt.js';
import { createAuthenticator, type RegistryAuth } from './auth.js';
import { createContext } from './context.js';
import { DEFAULT_UPLOAD_IDLE_MS, startUploadSweeper } from './expiry.js';
import { createRequestHandler } from './router.js';
import { TSKO_REGISTRY_HEADER } from './respond.js';
import { createStore } from './store.js';

export { DEFAULT_REGISTRY_ADDR, defaultRegistryRoot, parseListenAddress } from './address.js';
export { loadHtpasswd, loadTokenFile, parseHtpasswd, type RegistryAuth } from './auth.js';
export { gcRegistry, retainLatest, DEFAULT_RETAIN, DEFAULT_GC_GRACE_MS, type GcOptions, type GcResult, type RetainOptions, type RetainResult } from './gc.js';
export { DEFAULT_UPLOAD_IDLE_MS } from './expiry.js';
export { TSKO_REGISTRY_HEADER } from './respond.js';
export type { BlobSource } from './adopt.js';

export interface RegistryServerOptions {
  /** `host:port`; default 127.0.0.1:5001. Port 0 picks a free port (see RunningRegistry.address). */
  addr?: string;
  root: string;
  auth?: RegistryAuth;
  /** Largest blob accepted, in bytes (413 beyond). Default: no limit. */
  maxBlobBytes?: number;
  /** Needed to bind anything but loopback, and then `auth` is required too. */
  allowRemote?: boolean;
  /** An upload session with no new bytes for this long is removed by the server. Default an hour. */
  uploadIdleMs?: number;
  /** Unexpected failures (answered with 500), and a full disk, once until storage works again. */
  onError?: (err: unknown) => void;
  /** Harmless events worth a line only when asked for (a client that went away mid-request). */
  onDebug?: (message: string) => void;
}

export interface RunningRegistry {
  /** `host:port` actually bound. */
  address: string;
  url: string;
  root: string;
  /**
   * Only for code in this same process that may write to it unauthenticated (the embedded
   * registry tsko started for itself): stores a blob from a file on this machine without HTTP.
   */
  adoptBlob?(repository: string, digest: string, source: BlobSource): Promise<'stored' | 'existing'>;
  close(): Promise<void>;
}

function listen(server: Server, host: string, port: number, shown: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') {
        reject(new TskoError('REGISTRY_SERVE', `cannot serve the registry on ${shown}: the port is already in use`, {
          hint: 'stop whatever holds it, or pick another address with --addr',
          cause: err,
        }));
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES' || err.code === 'ENOTFOUND') {
        reject(new TskoError('REGISTRY_SERVE', `cannot serve the registry on ${shown}: ${err.code}`, { cause: err }));
      } else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

export async function startRegistryServer(options: RegistryServerOptions): Promise<RunningRegistry> {
  const { host, port } = parseListenAddress(options.addr ?? DEFAULT_REGISTRY_ADDR);
  const shown = formatAddress(host, port);
  if (!isLoopbackHost(host)) {
    if (!options.allowRemote) {
      throw new TskoError('REGISTRY_SERVE', `refusing to serve the registry on non-loopback address ${shown} without --allow-remote`, {
        hint: 'the embedded registry binds 127.0.0.1 by default; remote access needs --allow-remote and --htpasswd or --token-file',
      });
    }
    if (!options.auth) {
      throw new TskoError('REGISTRY_SERVE', `refusing to serve the registry on ${shown} without authentication`, {
        hint: 'pass --htpasswd FILE (bcrypt entries) or --token-file FILE',
      });
    }
  }
  const store = createStore(options.root);
  try {
    await store.init();
  } catch (err) {
    throw new TskoError('REGISTRY_SERVE', `cannot use registry root ${options.root}: ${(err as Error).message}`, { cause: err });
  }
  const { onError, onDebug } = options;
  const ctx = createContext(store, options.maxBlobBytes ?? Number.MAX_SAFE_INTEGER, {
    error: (err) => onError?.(err),
    debug: (message) => onDebug?.(message),
  });
  const handle = createRequestHandler(ctx, options.auth ? { auth: createAuthenticator(options.auth) } : {});
  // Not `import { createServer } from 'node:http'`: an ESM import of node:http reads every export,
  // and the WebSocket ones load undici (~15 MB of RSS the registry never uses).
  const http = process.getBuiltinModule('node:http');
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => void handle(req, res));
  await listen(server, host, port, shown);
  const sweeper = startUploadSweeper(ctx, options.uploadIdleMs ?? DEFAULT_UPLOAD_IDLE_MS);
  const bound = server.address();
  const actualPort = typeof bound === 'object' && bound ? bound.port : port;
  const address = formatAddress(host, actualPort);
  let closing: Promise<void> | undefined;
  return {
    address,
    url: `http://${address}`,
    root: options.root,
    adoptBlob: (repository, digest, source) => adoptBlob(store, repository, digest, source),
    close() {
      closing ??= Promise.all([
        sweeper.stop(),
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // A client stuck mid-upload must not hold shutdown hostage.
          setTimeout(() => server.closeAllConnections(), 2000).unref();
        }),
      ]).then(() => undefined);
      return closing;
    },
  };
}

export interface EnsureRegistryOptions {
  addr: string;
  root: string;
  signal?: AbortSignal;
  onError?: (err: unknown) => void;
  /**
   * What to do when another tsko's registry already serves `addr`: `reuse` it (a one-shot command,
   * which ends soon), or start this process's `own` on a free port of the same host, over the same
   * storage (a `tsko dev` session, which must not stop pushing when the other process exits).
   */
  whenTaken?: 'reuse' | 'own';
}

export interface EnsuredRegistry extends RunningRegistry {
  /** This process serves it. */
  started: boolean;
  /** Set when `addr` was another tsko's registry and this process serves its own instead. */
  instead?: string;
}

type Probe = { kind: 'tsko' } | { kind: 'free' } | { kind: 'other'; what: string };

/** What answers on `addr`: tsko's registry, nothing, or something else. */
export async function probeRegistry(addr: string, signal?: AbortSignal): Promise<Probe> {
  const { host, port } = parseListenAddress(addr);
  const url = `http://${formatAddress(host, port)}/v2/`;
  const timeout = AbortSignal.timeout(2000);
  try {
    const res = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'manual' });
    await res.body?.cancel();
    if (res.headers.get(TSKO_REGISTRY_HEADER) === '1') return { kind: 'tsko' };
    return { kind: 'other', what: `HTTP ${res.status} without the ${TSKO_REGISTRY_HEADER} header` };
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNREFUSED') return { kind: 'free' };
    return { kind: 'other', what: code ?? (err as Error).message };
  }
}

/**
 * Use the tsko registry already serving on `addr`, or start one in this process. Something else
 * on the port is an error naming the address: tsko never pushes to a registry it can't recognise.
 */
export async function ensureEmbeddedRegistry(options: EnsureRegistryOptions): Promise<EnsuredRegistry> {
  const { host, port } = parseListenAddress(options.addr);
  const address = formatAddress(host, port);
  // Two attempts: another tsko may win the race to bind between our probe and our listen.
  for (let attempt = 0; attempt < 2; attempt++) {
    const probe = await probeRegistry(options.addr, options.signal);
    if (probe.kind === 'tsko') {
      if (options.whenTaken !== 'own') return { address, url: `http://${address}`, root: options.root, started: false, close: async () => undefined };
      // Blobs and manifests are files written atomically, so two servers can share the root.
      const own = await startRegistryServer({ addr: formatAddress(host, 0), root: options.root, ...(options.onError ? { onError: options.onError } : {}) });
      return { ...own, started: true, instead: address };
    }
    if (probe.kind === 'other') {
      throw new TskoError('REGISTRY_SERVE', `something other than tsko's registry is listening on ${address} (${probe.what})`, {
        hint: 'stop it, or set KO_DOCKER_REPO to the registry you want to push to',
      });
    }
    try {
      const running = await startRegistryServer({ addr: options.addr, root: options.root, ...(options.onError ? { onError: options.onError } : {}) });
      return { ...running, started: true };
    } catch (err) {
      const inUse = err instanceof TskoError && (err.cause as { code?: string } | undefined)?.code === 'EADDRINUSE';
      if (!inUse || attempt === 1) throw err;
    }
  }
  throw new TskoError('REGISTRY_SERVE', `cannot serve the registry on ${address}`);
}
