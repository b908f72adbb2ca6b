// Where images go: KO_DOCKER_REPO when set (validated up front, so nothing is built for a repo
// that cannot be pushed to).
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { parseRepository } from '../registry/reference.js';
import type { BuildFlags } from './common.js';

export interface DockerRepo {
  dockerRepo: string;
  close(): Promise<void>;
}

export async function resolveDockerRepo(config: ResolvedConfig, flags: Pick<BuildFlags, 'push'>, _events: EventBus): Promise<DockerRepo> {
  const value = config.dockerRepo;
  if (!value) {
    if (!flags.push) return { dockerRepo: 'tsko.local', close: async () => {} };
    throw new TskoError('KO_DOCKER_REPO', 'KO_DOCKER_REPO environment variable is unset', {
      hint: 'set it to the registry and repository to push to, e.g. KO_DOCKER_REPO=127.0.0.1:5000/dev',
    });
  }
  try {
    parseRepository(value.toLowerCase());
  } catch (err) {
    throw new TskoError('KO_DOCKER_REPO', `KO_DOCKER_REPO="${value}" is not a valid repository: ${(err as Error).message}`, {
      hint: 'expected registry[:port]/path, e.g. 127.0.0.1:5000/dev or gcr.io/my-project',
    });
  }
  return { dockerRepo: value, close: async () => {} };
}
