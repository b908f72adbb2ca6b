// `tsko build IMPORTPATH|./DIR ...` (alias `publish`): build each main package into an image and
// publish it; stdout gets exactly one reference per argument, in argument order.
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { resolveConfig } from '../config/resolve.js';
import { TskoError } from '../errors.js';
import { createEventBus } from '../events.js';
import { buildAndPublish, type PublishResult } from '../publish/build-and-publish.js';
import { makePipeline } from '../publish/pipeline.js';
import { runLimited } from '../publish/publisher.js';
import { redact } from '../redact.js';
import { createPlainReporter } from '../../ui/plain.js';
import { addBuildFlags, keyValues, namingMode, normaliseBuildFlags, resolvePlatforms, tagOnlyCheck, type BuildFlags } from './common.js';
import { resolveDockerRepo } from './docker-repo.js';

export function registerBuildCommand(program: Command): void {
  const command = program
    .command('build')
    .alias('publish')
    .description('build Go main packages into images and publish them (as `ko build`)')
    .argument('[importpaths...]', 'import paths or ./dirs of main packages', ['.']);
  addBuildFlags(command).action(async (targets: string[], raw: Partial<BuildFlags>) => {
    const verbose = Boolean(program.opts().verbose);
    await runBuild(targets.length > 0 ? targets : ['.'], normaliseBuildFlags(raw), verbose);
  });
}

async function runBuild(targets: string[], flags: BuildFlags, verbose: boolean): Promise<void> {
  const events = createEventBus();
  const stderr = (line: string) => process.stderr.write(redact(line) + '\n');
  events.subscribe(createPlainReporter({ write: stderr, verbose }));

  if (flags.local) throw new TskoError('USAGE', '--local needs a Docker daemon, which tsko does not use', { hint: 'use --tarball FILE and `docker load`, or push to a registry' });
  if (flags.tarball && flags.platform.length > 1) throw new TskoError('USAGE', '--tarball can hold only one platform; pass a single --platform');
  tagOnlyCheck(flags);

  const config = await resolveConfig({ ...(flags.config ? { configFile: flags.config } : {}) });
  const platforms = resolvePlatforms(flags, config);
  const naming = namingMode(flags, (message) => events.emit({ type: 'log', level: 'warn', message }));
  const labels = keyValues(flags.imageLabel, '--image-label');
  const annotations = keyValues(flags.imageAnnotation, '--image-annotation');
  const repo = await resolveDockerRepo(config, flags, events);

  const pipeline = makePipeline({
    config,
    events,
    insecureRegistry: Boolean(flags.insecureRegistry),
    image: {
      ...(flags.imageUser !== undefined ? { user: flags.imageUser } : {}),
      labels,
      annotations,
      ...(flags.ldflags.length > 0 ? { ldflags: flags.ldflags } : {}),
      ...(flags.disableOptimizations ? { extraGoFlags: ['-gcflags', 'all=-N -l'] } : {}),
    },
  });
  const controller = new AbortController();
  const onSignal = () => controller.abort(new TskoError('ABORTED', 'interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const results: PublishResult[] = new Array(targets.length);
    await runLimited(
      targets.map((target, index) => ({ target, index })),
      flags.jobs,
      async ({ target, index }) => {
        results[index] = await buildAndPublish(
          pipeline,
          target,
          {
            dockerRepo: repo.dockerRepo,
            naming,
            tags: flags.tags,
            platforms,
            push: flags.push,
            ...(flags.ociLayoutPath ? { ociLayoutPath: flags.ociLayoutPath } : {}),
            ...(flags.tarball ? { tarball: flags.tarball } : {}),
          },
          events,
          controller.signal,
        );
      },
    ).catch((err: unknown) => {
      controller.abort(err);
      throw err;
    });
    const lines = results.map((result) => (flags.tagOnly ? `${result.reference.split('@')[0]?.replace(/:[^:/]+$/, '')}:${flags.tags[0]}` : result.reference));
    if (flags.imageRefs) await writeFile(flags.imageRefs, lines.map((line) => `${line}\n`).join(''));
    process.stdout.write(lines.map((line) => `${line}\n`).join(''));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pipeline.close();
    await repo.close();
  }
}
