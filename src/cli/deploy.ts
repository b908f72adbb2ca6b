// `tsko deploy [IMPORTPATH] --target local|kubernetes|cloudrun`: one iteration of the dev loop —
// build, push, deploy — with the same flags and config as `tsko dev`. Exits 0 only once the new
// revision serves; prints its URL (else its revision name) on stdout. The local target runs the
// revision on this machine, so that one keeps serving until Ctrl-C.
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { resolveConfig } from '../config/resolve.js';
import { createLocalTarget } from '../deploy/local.js';
import type { Target } from '../deploy/target.js';
import { TskoError } from '../errors.js';
import { createEventBus, withFields } from '../events.js';
import { parsePlatform } from '../go/platform.js';
import type { LayerBytes } from '../image/layout.js';
import type { Platform } from '../image/types.js';
import { buildAndPublish } from '../publish/build-and-publish.js';
import { makePipeline } from '../publish/pipeline.js';
import { redact } from '../redact.js';
import { createJsonReporter } from '../../ui/json.js';
import { createPlainReporter } from '../../ui/plain.js';
import { namingMode, type BuildFlags } from './common.js';
import { resolveDockerRepo } from './docker-repo.js';
import { addTargetFlags, remotePlatform, remoteTargets, targetKind, type TargetFlags } from './targets.js';

interface DeployFlags extends TargetFlags {
  config?: string;
  port?: number;
  json?: boolean;
  platform?: string;
  insecureRegistry?: boolean;
  bare?: boolean;
  baseImportPaths?: boolean;
  preserveImportPaths?: boolean;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new TskoError('USAGE', `--port must be a port number, got "${value}"`);
  return n;
}

export function registerDeployCommand(program: Command): void {
  const command = program
    .command('deploy')
    .description('build, push and deploy once; exits 0 when the new revision serves')
    .argument('[importpath]', 'import path or ./dir of a main package', '.')
    .option('--config <path>', 'config file')
    .addOption(new Option('--target <target>', "where it runs (default: the config's dev.target, else local)").choices(['local', 'kubernetes', 'cloudrun']))
    .addOption(new Option('--port <n>', 'local: front port (default 8080)').argParser(port))
    .option('--json', 'print events as JSON lines on stdout')
    .option('--platform <os/arch>', 'platform to build (remote default: linux/amd64)')
    .option('--insecure-registry', 'talk plain http to the registry')
    .option('--bare', 'use KO_DOCKER_REPO as the image name')
    .option('-B, --base-import-paths', "name images KO_DOCKER_REPO/<import path's last element>")
    .option('-P, --preserve-import-paths', 'name images KO_DOCKER_REPO/<full import path>');
  addTargetFlags(command).action(async (target: string, flags: DeployFlags) => {
    await runDeploy(target, flags, Boolean(program.opts().verbose));
  });
}

function hostPlatform(): Platform {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch];
  return { os: process.platform, architecture: arch ?? process.arch };
}

async function runDeploy(importPath: string, flags: DeployFlags, verbose: boolean): Promise<void> {
  const events = createEventBus();
  if (flags.json) events.subscribe(createJsonReporter((line) => process.stdout.write(line + '\n')));
  else events.subscribe(createPlainReporter({ write: (line) => process.stderr.write(redact(line) + '\n'), verbose }));

  const config = await resolveConfig(flags.config ? { configFile: flags.config } : {});
  const kind = targetKind(flags, config);
  const remote = kind === 'local' ? undefined : remoteTargets(kind, flags, config, events);
  const platform = kind === 'local' ? (flags.platform ? parsePlatform(flags.platform) : hostPlatform()) : remotePlatform(flags.platform, config);
  const naming = namingMode(flags as unknown as BuildFlags, (message) => events.emit({ type: 'log', level: 'warn', message }));

  const controller = new AbortController();
  const onSignal = () => controller.abort(new TskoError('ABORTED', 'interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const repo = await resolveDockerRepo(config, { push: true }, events, controller.signal);
  const pipeline = makePipeline({ config, events, insecureRegistry: Boolean(flags.insecureRegistry) });
  let target: Target | undefined;
  try {
    // Before anything is built: a remote cluster cannot pull from this machine's loopback.
    await remote?.checkRegistry(repo.dockerRepo, true);
    const published = await buildAndPublish(pipeline, importPath, { dockerRepo: repo.dockerRepo, naming, tags: ['latest'], platforms: [platform], push: true }, events, controller.signal);
    const built = published.built[0];
    if (!built) throw new TskoError('INTERNAL', 'nothing was built');
    const service = (published.importPath.split('/').pop() || 'app').toLowerCase().replace(/[^a-z0-9-]/g, '-');
    target = remote
      ? remote.make(service)
      : await createLocalTarget({ port: flags.port ?? config.dev.port ?? 8080, workDir: join(config.cacheDir, 'deploy', service), events });
    const layerBytes: LayerBytes = (layer) =>
      layer.source.kind === 'memory'
        ? Promise.resolve(layer.source.data)
        : pipeline.client.getBlob({ registry: layer.source.registry, repository: layer.source.repository }, layer.digest, controller.signal);
    const result = await target.deploy({
      service,
      iteration: 1,
      reference: published.reference,
      importPath: published.importPath,
      image: built.image,
      layerBytes,
      events: withFields(events, { service }),
      signal: controller.signal,
    });
    events.emit({ type: 'log', level: 'info', message: `${service}: ${result.revision} is serving${result.url ? ` at ${result.url}` : ''}` });
    if (!flags.json) process.stdout.write(`${result.url ?? result.revision}\n`);
    if (kind === 'local') {
      // The revision is a child of this process: serve until Ctrl-C.
      events.emit({ type: 'log', level: 'info', message: 'serving until Ctrl-C' });
      await new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve(), { once: true }));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await target?.close().catch(() => undefined);
    await pipeline.close().catch(() => undefined);
    await repo.close().catch(() => undefined);
  }
}
