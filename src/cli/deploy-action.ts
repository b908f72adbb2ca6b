// What `tsko deploy` does once its flags are parsed (deploy.ts registers it): one iteration of the
// dev loop through the same runner, then exit — or, for the local target, serve until Ctrl-C.
import { resolveConfig } from '../config/resolve.js';
import { targetFactory } from '../deploy/targets.js';
import type { Target } from '../deploy/target.js';
import { runIteration } from '../dev/iteration.js';
import { TskoError } from '../errors.js';
import { createEventBus } from '../events.js';
import { serviceNameOf } from '../publish/naming.js';
import { makePipeline } from '../publish/pipeline.js';
import { createReporter, pickReporter } from '../../ui/reporters.js';
import { resolveDockerRepo } from './docker-repo.js';
import { loopInline, type LoopCommandFlags } from './targets.js';

export async function runDeploy(importPath: string, flags: LoopCommandFlags, verbose: boolean): Promise<void> {
  const events = createEventBus();
  const reporter = createReporter(pickReporter({ json: Boolean(flags.json), tty: false, dashboard: false }), { events, stdout: process.stdout, stderr: process.stderr, verbose });
  const config = await resolveConfig({ command: 'deploy', ...loopInline(flags, [importPath]) });
  for (const message of config.warnings) events.emit({ type: 'log', level: 'warn', message });
  const targets = targetFactory(config, events, 'deploy');

  const controller = new AbortController();
  const onSignal = () => controller.abort(new TskoError('ABORTED', 'interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const repo = await resolveDockerRepo(config, events, controller.signal);
  const pipeline = makePipeline(config, { events, dockerRepo: repo.dockerRepo, inProcess: repo.inProcess });
  let target: Target | undefined;
  try {
    // Before anything is built: a remote cluster cannot pull from this machine's loopback.
    await targets.checkRegistry(repo.dockerRepo, true);
    const resolved = await pipeline.resolve(importPath, controller.signal);
    const service = serviceNameOf(resolved.pkg.importPath);
    target = await targets.make(service, { target: importPath }, 0);
    // A remote target that cannot take this deploy says so now, before the build and the push.
    await target.preflight?.({ service, importPath: resolved.pkg.importPath, events, signal: controller.signal });
    const outcome = await runIteration({ service, iteration: 1, trigger: ['deploy'], target: resolved, pipeline, deployTo: target, events, signal: controller.signal });
    if (outcome.result !== 'deployed') {
      throw outcome.failure ?? new TskoError('ABORTED', outcome.result === 'cancelled' ? 'interrupted' : `nothing deployed (${outcome.result})`);
    }
    events.emit({ type: 'log', level: 'info', message: `${service}: ${outcome.revision} is serving${outcome.url ? ` at ${outcome.url}` : ''}` });
    if (!flags.json) process.stdout.write(`${outcome.url ?? outcome.revision}\n`);
    if (target.kind === 'local') {
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
    await reporter.close();
  }
}
