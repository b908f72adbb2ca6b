// `tsko dev [IMPORTPATH|DIR ...]`: the save-to-running daemon. Thin: flags → config → a dev
// session with a reporter; Ctrl-C or SIGTERM stops everything within two seconds.
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { resolveConfig } from '../config/resolve.js';
import { TskoError } from '../errors.js';
import { createEventBus } from '../events.js';
import { createLocalTarget } from '../deploy/local.js';
import { parsePlatform } from '../go/platform.js';
import type { Platform } from '../image/types.js';
import { startDevSession, type DevServiceRequest } from '../dev/session.js';
import { retainLatest } from '../registry/server/index.js';
import { isLoopbackRegistry } from '../registry/reference.js';
import { createDevReporter } from './dev-reporter.js';
import { namingMode, type BuildFlags } from './common.js';
import { resolveDockerRepo } from './docker-repo.js';
import { addTargetFlags, remotePlatform, remoteTargets, targetKind, type TargetFlags } from './targets.js';

interface DevFlags extends TargetFlags {
  config?: string;
  port?: number;
  json?: boolean;
  platform?: string;
  keepImages?: number;
  insecureRegistry?: boolean;
  bare?: boolean;
  baseImportPaths?: boolean;
  preserveImportPaths?: boolean;
  debounce: number;
  readyTimeout?: number;
  layerCompression: 'auto' | 'gzip' | 'none';
}

const SHUTDOWN_DEADLINE_MS = 2000;

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new TskoError('USAGE', `${name} must be a whole number, got "${value}"`);
    return n;
  };
}

export function registerDevCommand(program: Command): void {
  const command = program
    .command('dev')
    .description('watch Go services and rebuild, push and redeploy them on every save')
    .argument('[importpaths...]', "import paths or ./dirs of main packages (default: the config's dev.services, else .)")
    .option('--config <path>', 'config file')
    .addOption(new Option('--port <n>', 'front port of the first service (the next ones count up); default 8080').argParser(positiveInt('--port')))
    .option('--json', 'print events as JSON lines on stdout')
    .addOption(new Option('--target <target>', "where revisions run (default: the config's dev.target, else local)").choices(['local', 'kubernetes', 'cloudrun']))
    .option('--platform <os/arch>', 'platform to build (the local target needs this machine\'s)')
    .addOption(new Option('--keep-images <n>', 'images kept per repository in the embedded registry (default 20)').argParser(positiveInt('--keep-images')))
    .option('--insecure-registry', 'talk plain http to the registry')
    .option('--bare', 'use KO_DOCKER_REPO as the image name')
    .option('-B, --base-import-paths', "name images KO_DOCKER_REPO/<import path's last element>")
    .option('-P, --preserve-import-paths', 'name images KO_DOCKER_REPO/<full import path>')
    .addOption(
      new Option('--layer-compression <mode>', 'gzip app layers, or not; auto: plain tar when the registry is on this machine and the target local')
        .choices(['auto', 'gzip', 'none'])
        .default('auto'),
    )
    .addOption(new Option('--ready-timeout <ms>', 'how long a new local revision has to answer on PORT (default 10000)').argParser(positiveInt('--ready-timeout')))
    .addOption(new Option('--debounce <ms>', 'quiet time after a save before building').argParser(positiveInt('--debounce')).default(10).hideHelp());
  addTargetFlags(command).action(async (targets: string[], flags: DevFlags) => {
    await runDev(targets, flags, Boolean(program.opts().verbose));
  });
}

/**
 * gzip is a third of a warm iteration's time for an 8 MB binary on a small machine, and buys
 * nothing when the registry and the revisions are on this machine: then the app layers go up as
 * plain tar. A remote target (or registry) gets gzip, as the network wants.
 */
function layerCompression(mode: DevFlags['layerCompression'], dockerRepo: string, remoteTarget: boolean): 'gzip' | 'none' {
  if (mode !== 'auto') return mode;
  const registry = dockerRepo.split('/')[0] ?? '';
  return !remoteTarget && isLoopbackRegistry(registry) ? 'none' : 'gzip';
}

function hostPlatform(): Platform {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch];
  return { os: process.platform, architecture: arch ?? process.arch };
}

async function runDev(targets: string[], flags: DevFlags, verbose: boolean): Promise<void> {
  const events = createEventBus();
  // --json, else the dashboard on a terminal, else plain lines. Its keys act on the session below.
  const reporter = createDevReporter({
    json: Boolean(flags.json),
    verbose,
    events,
    controls: {
      rebuild: () => session?.rebuildAll('r'),
      setPaused: (paused) => session?.setPaused(paused),
      quit: (how) => void stop(how === 'ctrl-c' ? 130 : 0),
    },
  });

  const inline = flags.config ? { configFile: flags.config } : {};
  const config = await resolveConfig(inline);
  const kind = targetKind(flags, config);
  const remote = kind === 'local' ? undefined : remoteTargets(kind, flags, config, events);
  const platform = remote ? remotePlatform(flags.platform, config) : flags.platform ? parsePlatform(flags.platform) : hostPlatform();
  const host = hostPlatform();
  if (!remote && (platform.os !== host.os || platform.architecture !== host.architecture)) {
    throw new TskoError('PLATFORM', `the local target runs revisions on this machine (${host.os}/${host.architecture}), not ${flags.platform}`);
  }
  const services = serviceRequests(targets, config.dev.services);
  const basePort = flags.port ?? config.dev.port ?? 8080;
  const keep = flags.keepImages ?? config.dev.keepImages ?? 20;
  const naming = namingMode(flags as unknown as BuildFlags, (message) => events.emit({ type: 'log', level: 'warn', message }));

  const repo = await resolveDockerRepo(config, { push: true }, events);
  await remote?.checkRegistry(repo.dockerRepo, false).catch(async (err: unknown) => {
    await repo.close();
    throw err;
  });
  const controller = new AbortController();
  let session: Awaited<ReturnType<typeof startDevSession>> | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (exitCode: number) => {
    stopping ??= (async () => {
      controller.abort();
      // Whatever happens, exit by the deadline: a dev daemon must never hang on Ctrl-C.
      setTimeout(() => process.exit(exitCode), SHUTDOWN_DEADLINE_MS).unref();
      await reporter.close();
      await session?.close().catch(() => undefined);
      await repo.close().catch(() => undefined);
      process.exit(exitCode);
    })();
    return stopping;
  };
  // `on`, not `once` (stop runs once anyway): Ink's signal-exit re-raises a signal when it sees no
  // other listener left, which a spent `once` listener is not, and the process would die mid-stop.
  process.on('SIGINT', () => void stop(130));
  process.on('SIGTERM', () => void stop(143));
  // A closed terminal (or a killed tmux pane) must not orphan the revisions either.
  process.on('SIGHUP', () => void stop(129));

  try {
    reporter.show();
    session = await startDevSession({
      inline,
      config,
      services,
      events,
      dockerRepo: repo.dockerRepo,
      naming,
      platform,
      pipelineOptions: {
        insecureRegistry: Boolean(flags.insecureRegistry),
        image: { layerCompression: layerCompression(flags.layerCompression, repo.dockerRepo, Boolean(remote)) },
      },
      debounceMs: flags.debounce,
      makeTarget: (service, request, index) =>
        remote ? Promise.resolve(remote.make(service)) : createLocalTarget({
          port: request.port ?? basePort + index,
          workDir: join(config.cacheDir, 'dev', service),
          events,
          ...(flags.readyTimeout !== undefined ? { readyTimeoutMs: flags.readyTimeout } : {}),
        }),
      ...(repo.embedded
        ? {
            afterPush: async (repository) => {
              await retainLatest(repo.embedded?.root as string, repository.repository, keep);
            },
          }
        : {}),
    });
  } catch (err) {
    await reporter.close();
    await repo.close();
    throw err;
  }
  // Runs until a signal; the action's promise must not resolve, or commander would return.
  await new Promise<never>(() => {});
}

function serviceRequests(targets: string[], configured: Array<string | { path: string; port?: number }> | undefined): DevServiceRequest[] {
  if (targets.length > 0) return targets.map((target) => ({ target }));
  if (configured && configured.length > 0) {
    return configured.map((entry) => (typeof entry === 'string' ? { target: entry } : { target: entry.path, ...(entry.port ? { port: entry.port } : {}) }));
  }
  return [{ target: '.' }];
}
