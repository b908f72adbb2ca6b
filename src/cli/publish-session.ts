// What every image-publishing command (build, resolve, apply, create, run) sets up the same way:
// the event bus with a plain reporter on stderr, the resolved config, ko's build flags turned into
// a PublishRequest, the registry (KO_DOCKER_REPO or the embedded one), one pipeline, and an abort
// signal that Ctrl-C and SIGTERM trip. stdout is left to the command for its results.
import { writeFile } from 'node:fs/promises';
import { resolveConfig, type ResolvedConfig } from '../config/resolve.js';
import { TskoError } from '../errors.js';
import { createEventBus, type EventBus } from '../events.js';
import type { PublishRequest, PublishResult } from '../publish/build-and-publish.js';
import { makePipeline, type Pipeline } from '../publish/pipeline.js';
import { redact } from '../redact.js';
import { createPlainReporter } from '../../ui/plain.js';
import { keyValues, namingMode, platformRequest, tagOnlyCheck, type BuildFlags } from './common.js';
import { resolveDockerRepo } from './docker-repo.js';

export interface PublishSession {
  events: EventBus;
  config: ResolvedConfig;
  pipeline: Pipeline;
  request: PublishRequest;
  signal: AbortSignal;
  /** Cancels everything in flight (the first failure of many does this). */
  abort(reason: unknown): void;
  close(): Promise<void>;
}

export async function openPublishSession(flags: BuildFlags, verbose: boolean): Promise<PublishSession> {
  const events = createEventBus();
  const stderr = (line: string) => process.stderr.write(redact(line) + '\n');
  events.subscribe(createPlainReporter({ write: stderr, verbose }));

  if (flags.local) throw new TskoError('USAGE', '--local needs a Docker daemon, which tsko does not use', { hint: 'use --tarball FILE and `docker load`, or push to a registry' });
  if (flags.tarball && (flags.platform.length > 1 || flags.platform.includes('all'))) {
    throw new TskoError('USAGE', '--tarball can hold only one platform; pass a single --platform');
  }
  tagOnlyCheck(flags);

  const config = await resolveConfig({ ...(flags.config ? { configFile: flags.config } : {}) });
  const platforms = platformRequest(flags, config);
  const naming = namingMode(flags, (message) => events.emit({ type: 'log', level: 'warn', message }));
  const labels = keyValues(flags.imageLabel, '--image-label');
  const annotations = keyValues(flags.imageAnnotation, '--image-annotation');
  const repo = await resolveDockerRepo(config, flags, events);

  const pipeline = makePipeline({
    config,
    events,
    insecureRegistry: Boolean(flags.insecureRegistry),
    jobs: flags.jobs,
    image: {
      ...(flags.imageUser !== undefined ? { user: flags.imageUser } : {}),
      labels,
      annotations,
      ...(flags.ldflags.length > 0 ? { ldflags: flags.ldflags } : {}),
      ...(flags.disableOptimizations ? { extraGoFlags: ['-gcflags', 'all=-N -l'] } : {}),
    },
  });
  const request: PublishRequest = {
    dockerRepo: repo.dockerRepo,
    naming,
    tags: flags.tags,
    platforms,
    push: flags.push,
    sbom: flags.sbom === 'none' ? 'none' : 'spdx',
    ...(flags.sbomDir ? { sbomDir: flags.sbomDir } : {}),
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(flags.ociLayoutPath ? { ociLayoutPath: flags.ociLayoutPath } : {}),
    ...(flags.tarball ? { tarball: flags.tarball } : {}),
  };

  const controller = new AbortController();
  const onSignal = () => controller.abort(new TskoError('ABORTED', 'interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    events,
    config,
    pipeline,
    request,
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    close: async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await pipeline.close();
      await repo.close();
    },
  };
}

/** The line a command prints for a result: the reference, or name:tag with --tag-only. */
export function printedLine(result: PublishResult, flags: Pick<BuildFlags, 'tagOnly' | 'tags'>): string {
  if (!flags.tagOnly) return result.reference;
  const name = (result.reference.split('@')[0] ?? '').replace(/:[^:/]+$/, '');
  return `${name}:${flags.tags[0]}`;
}

/** --image-refs: every printed reference, and after an index, each platform's image (ko #555). */
export async function writeImageRefs(file: string, entries: Array<{ line: string; result: PublishResult }>): Promise<void> {
  const lines: string[] = [];
  for (const { line, result } of entries) {
    lines.push(line);
    for (const child of result.children ?? []) lines.push(child.reference);
  }
  try {
    await writeFile(file, lines.map((line) => `${line}\n`).join(''));
  } catch (err) {
    throw new TskoError('OUTPUT', `cannot write --image-refs ${file}: ${(err as Error).message}`, { cause: err });
  }
}
