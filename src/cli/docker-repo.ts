// Where images go: KO_DOCKER_REPO when set (validated up front, so nothing is built for a repo
// that cannot be pushed to); when unset or the reserved `tsko.local`, the embedded registry —
// for a one-shot command the one already serving at its address, or one started in this process
// for as long as it runs; for `tsko dev` always one of its own (on the address if free, else on a
// free port over the same storage), so a session never depends on another session's lifetime.
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { EMBEDDED_REPO, isEmbeddedRepo, type ResolvedConfig } from '../config/resolve.js';
import type { InProcessRegistry } from '../publish/registry-writer.js';
import { parseRepository } from '../registry/reference.js';
import { defaultRegistryRoot } from '../registry/server/address.js';


export interface DockerRepo {
  dockerRepo: string;
  /** Set when images go to the embedded registry. */
  embedded?: { address: string; root: string; started: boolean };
  /** The embedded registry when this process serves it (then layers are handed over, not uploaded). */
  inProcess?: InProcessRegistry;
  close(): Promise<void>;
}

export interface DockerRepoOptions {
  /** A long-running session: serve its own embedded registry rather than reuse another process's. */
  ownRegistry?: boolean;
}

export async function resolveDockerRepo(config: ResolvedConfig, events: EventBus, signal?: AbortSignal, options: DockerRepoOptions = {}): Promise<DockerRepo> {
  const value = config.dockerRepo ?? EMBEDDED_REPO;
  if (isEmbeddedRepo(value)) {
    if (!config.build.push) return { dockerRepo: value, close: async () => {} };
    const root = defaultRegistryRoot(config.env, config.homedir);
    // The server's code loads only for the embedded registry, not for a KO_DOCKER_REPO elsewhere.
    const { ensureEmbeddedRegistry } = await import('../registry/server/index.js');
    const running = await ensureEmbeddedRegistry({
      addr: config.embeddedRegistryAddr,
      root,
      ...(signal ? { signal } : {}),
      ...(options.ownRegistry ? { whenTaken: 'own' as const } : {}),
    });
    if (running.instead) {
      events.emit({
        type: 'log',
        level: 'info',
        message: `${running.instead} is another tsko's registry, which stops with it: this session serves its own at ${running.address} (same storage)`,
      });
    }
    events.emit({ type: 'registry.embedded', address: running.address, root, started: running.started });
    return {
      dockerRepo: running.address + value.slice(EMBEDDED_REPO.length),
      embedded: { address: running.address, root, started: running.started },
      ...(running.adoptBlob ? { inProcess: { address: running.address, adoptBlob: running.adoptBlob } } : {}),
      close: () => running.close(),
    };
  }
  try {
    parseRepository(value.toLowerCase());
  } catch (err) {
    throw new TskoError('KO_DOCKER_REPO', `KO_DOCKER_REPO="${value}" is not a valid repository: ${(err as Error).message}`, {
      hint: 'expected registry[:port]/path, e.g. 127.0.0.1:5000/dev or gcr.io/my-project (or unset it to use the embedded registry)',
    });
  }
  return { dockerRepo: value, close: async () => {} };
}
