// Makes the targets a dev session (or `tsko deploy`) deploys to, from the resolved dev settings:
// a local target per service on its own front port, or Kubernetes / Cloud Run targets sharing
// what one session shares (the map of pushed references for manifests, one token source). It
// also refuses, before anything is built, a registry on this machine's loopback for a target
// elsewhere, which could never pull from it.
import { join } from 'node:path';
import type { DevService, ResolvedDevOptions } from '../config/dev-options.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { createCloudRunTarget, DEFAULT_RUN_API } from './cloudrun.js';
import { createTokenSource } from './gcp-token.js';
import { createKubernetesTarget } from './kubernetes.js';
import { createLocalTarget } from './local.js';
import { isLoopbackHost } from '../net/loopback.js';
import { assertRegistryReachable } from './loopback.js';
import type { Target } from './target.js';

export interface TargetFactory {
  /** The target of one service; `index` counts the services (the local target's port counts up). */
  make(service: string, request: DevService, index: number): Promise<Target>;
  /**
   * Refuses a loopback registry when the target's endpoint is elsewhere. `strict` (tsko deploy)
   * also fails when the endpoint cannot be known yet (no kubeconfig); tsko dev lets each deploy
   * report that instead, so a kubeconfig fixed later is picked up.
   */
  checkRegistry(dockerRepo: string, strict: boolean): Promise<void>;
}

export function targetFactory(config: ResolvedConfig, events: EventBus, workDir: 'dev' | 'deploy'): TargetFactory {
  const dev = config.dev;
  if (!dev) throw new TskoError('INTERNAL', 'targets need a config resolved for `tsko dev` or `tsko deploy`');
  if (dev.kubernetes) return kubernetesTargets(dev.kubernetes, events);
  if (dev.cloudrun) return cloudRunTargets(dev.cloudrun, dev, config, events);
  return localTargets(dev, config, events, workDir);
}

function localTargets(dev: ResolvedDevOptions, config: ResolvedConfig, events: EventBus, workDir: 'dev' | 'deploy'): TargetFactory {
  return {
    make: (service, request, index) =>
      createLocalTarget({
        port: request.port ?? dev.port + index,
        workDir: join(config.cacheDir, workDir, service),
        events,
        ...(dev.readyTimeoutMs !== undefined ? { readyTimeoutMs: dev.readyTimeoutMs } : {}),
      }),
    checkRegistry: () => Promise.resolve(),
  };
}

function kubernetesTargets(settings: NonNullable<ResolvedDevOptions['kubernetes']>, events: EventBus): TargetFactory {
  // One map for the session: a manifest naming two services' images resolves both.
  const references = new Map<string, string>();
  const make = () =>
    createKubernetesTarget({
      kubeconfig: settings.kubeconfig,
      ...(settings.deployment ? { deployment: settings.deployment } : {}),
      ...(settings.container ? { container: settings.container } : {}),
      ...(settings.manifests.length > 0 ? { manifests: settings.manifests } : {}),
      timeoutMs: settings.timeoutMs,
      references,
      events,
    });
  return {
    make: () => Promise.resolve(make()),
    async checkRegistry(dockerRepo, strict) {
      const probe = make();
      let server: string;
      try {
        server = await probe.server();
      } catch (err) {
        if (strict) throw err;
        if (isLoopbackHost(dockerRepo)) events.emit({ type: 'log', level: 'warn', message: `${(err as Error).message}; every deploy will try again` });
        return;
      } finally {
        await probe.close();
      }
      assertRegistryReachable(dockerRepo, server, `the cluster at ${server}`, 'set KO_DOCKER_REPO to a registry the cluster can pull from (e.g. REGION-docker.pkg.dev/PROJECT/REPO), or use a cluster on this machine (kind, minikube)');
    },
  };
}

function cloudRunTargets(settings: NonNullable<ResolvedDevOptions['cloudrun']>, dev: ResolvedDevOptions, config: ResolvedConfig, events: EventBus): TargetFactory {
  const { env } = config;
  const apiBase = settings.apiBase ?? DEFAULT_RUN_API;
  // One token source for the session: one ADC/gcloud lookup, one "using a token from" line.
  const tokens = createTokenSource({ env: { ...env }, ...(env.CLOUDSDK_AUTH_ACCESS_TOKEN ? { envToken: env.CLOUDSDK_AUTH_ACCESS_TOKEN } : {}), events });
  if (settings.noTraffic && !settings.tag) {
    events.emit({ type: 'log', level: 'warn', message: '--no-traffic without --tag: no URL reaches the new revision' });
  }
  return {
    make: (_service, request) =>
      Promise.resolve(
        createCloudRunTarget({
          project: settings.project,
          region: settings.region,
          ...(settings.service ? { service: settings.service } : {}),
          ...(settings.container ? { container: settings.container } : {}),
          apiBase,
          ...(settings.noTraffic ? { noTraffic: true } : {}),
          ...(settings.tag ? { tag: settings.tag } : {}),
          timeoutMs: settings.timeoutMs,
          // A created service's container port: the service's own, else --port / dev.port (default 8080).
          port: request.port ?? dev.port,
          allowUnauthenticated: settings.allowUnauthenticated,
          tokens,
          events,
        }),
      ),
    async checkRegistry(dockerRepo) {
      assertRegistryReachable(dockerRepo, apiBase, 'Cloud Run', 'set KO_DOCKER_REPO to an Artifact Registry repository Cloud Run can pull from (REGION-docker.pkg.dev/PROJECT/REPO)');
    },
  };
}
