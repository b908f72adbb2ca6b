// What every one-shot command that publishes images (build, resolve, apply, create, run) sets up
// the same way: the event bus with its reporter, the config resolved from the command line and
// the file, the registry (KO_DOCKER_REPO or the embedded one), one pipeline, and an abort signal
// that Ctrl-C and SIGTERM trip. stdout is left to the command for its results.
import { writeFile } from 'node:fs/promises';
import { resolveConfig, type InlineConfig, type ResolvedConfig } from '../config/resolve.js';
import { TskoError } from '../errors.js';
import { createEventBus, type EventBus } from '../events.js';
import { makePipeline, type Pipeline } from '../publish/pipeline.js';
import type { Published } from '../publish/publisher.js';
import { createReporter, type Reporter } from '../../ui/reporters.js';
import { resolveDockerRepo } from './docker-repo.js';

export interface CommandSession {
  events: EventBus;
  config: ResolvedConfig;
  pipeline: Pipeline;
  signal: AbortSignal;
  /** Cancels everything in flight (the first failure of many does this). */
  abort(reason: unknown): void;
  close(): Promise<void>;
}

/** The reporter of a one-shot command: plain lines on stderr. */
function commandReporter(events: EventBus, verbose: boolean): Reporter {
  return createReporter('plain', { events, stdout: process.stdout, stderr: process.stderr, verbose });
}

export async function openCommandSession(inline: InlineConfig, verbose: boolean): Promise<CommandSession> {
  const events = createEventBus();
  const reporter = commandReporter(events, verbose);
  const config = await resolveConfig(inline);
  for (const message of config.warnings) events.emit({ type: 'log', level: 'warn', message });
  const repo = await resolveDockerRepo(config, events);
  const pipeline = makePipeline(config, { events, dockerRepo: repo.dockerRepo, inProcess: repo.inProcess });

  const controller = new AbortController();
  const onSignal = () => controller.abort(new TskoError('ABORTED', 'interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    events,
    config,
    pipeline,
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    close: async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await pipeline.close();
      await repo.close();
      await reporter.close();
    },
  };
}

/** The line a command prints for a result: the reference, or name:tag with --tag-only. */
export function printedLine(published: Published, config: ResolvedConfig): string {
  if (!config.build.tagOnly) return published.reference;
  const name = (published.reference.split('@')[0] ?? '').replace(/:[^:/]+$/, '');
  return `${name}:${config.build.tags[0]}`;
}

/** --image-refs: every printed reference, and after an index, each platform's image (ko #555). */
export async function writeImageRefs(file: string, published: readonly Published[], config?: ResolvedConfig): Promise<void> {
  const lines: string[] = [];
  for (const result of published) {
    lines.push(config ? printedLine(result, config) : result.reference);
    for (const child of result.children ?? []) lines.push(child.reference);
  }
  try {
    await writeFile(file, lines.map((line) => `${line}\n`).join(''));
  } catch (err) {
    throw new TskoError('OUTPUT', `cannot write --image-refs ${file}: ${(err as Error).message}`, { cause: err });
  }
}
