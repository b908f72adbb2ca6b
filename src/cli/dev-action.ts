// What `tsko dev` does once its flags are parsed (dev.ts registers it): flags → config → a dev
// session with a reporter; Ctrl-C, SIGTERM, SIGHUP or the death of the process that started it
// stops everything within two seconds.
import { join } from 'node:path';
import { resolveConfig } from '../config/resolve.js';
import { targetFactory } from '../deploy/targets.js';
import { openSessionLog } from '../dev/session-log.js';
import { startDevSession, type DevSession } from '../dev/session.js';
import { createEventBus } from '../events.js';
import { createReporter, pickReporter } from '../../ui/reporters.js';
import { resolveDockerRepo } from './docker-repo.js';
import { openUrl } from './open-url.js';
import { onParentDeath } from './parent-watch.js';
import { loopInline, type LoopCommandFlags } from './targets.js';

const SHUTDOWN_DEADLINE_MS = 2000;

export async function runDev(targets: string[], flags: LoopCommandFlags, verbose: boolean): Promise<void> {
  const events = createEventBus();
  let session: DevSession | undefined;
  // --json, else the dashboard on a terminal, else plain lines. Its keys act on the session below.
  const reporter = createReporter(pickReporter({ json: Boolean(flags.json), tty: Boolean(process.stdout.isTTY), dashboard: true }), {
    events,
    stdout: process.stdout,
    stderr: process.stderr,
    verbose,
    dashboard: {
      stdin: process.stdin,
      controls: {
        rebuild: () => session?.rebuildAll('r'),
        setPaused: (paused) => session?.setPaused(paused),
        quit: (how) => void stop(how === 'ctrl-c' ? 130 : 0),
        openUrl: (url) => openUrl(url, { path: process.env.PATH, platform: process.platform }),
      },
      // https://no-color.org: set and not empty.
      color: !process.env.NO_COLOR,
      cwd: process.cwd(),
    },
  });

  const inline = { command: 'dev' as const, ...loopInline(flags, targets) };
  const config = await resolveConfig(inline);
  // Every event from here on also goes to a file (its path in the header and printed on exit).
  const sessionLog = await openSessionLog({ dir: join(config.cacheDir, 'dev', 'logs'), events }).catch(() => undefined);
  const closeLog = async () => {
    await sessionLog?.close();
    if (sessionLog) process.stderr.write(`session log: ${sessionLog.path}\n`);
  };
  for (const message of config.warnings) events.emit({ type: 'log', level: 'warn', message });
  // One factory per resolved config: its targets share a session's state (the pushed references a
  // manifest resolves, one token source); a reload with other target settings gets a new one.
  // The registry check runs once per factory: before anything starts, and again after a reload
  // that changed the target (its targets then fail to be made, saying why).
  // Its own registry: another session's would take every push down with it when it exits.
  const repo = await resolveDockerRepo(config, events, undefined, { ownRegistry: true });
  const targetsFor = (resolved: typeof config) => {
    const targets = targetFactory(resolved, events, 'dev');
    return { config: resolved, targets, checked: targets.checkRegistry(repo.dockerRepo, false) };
  };
  let factory = targetsFor(config);
  await factory.checked.catch(async (err: unknown) => {
    await repo.close();
    await closeLog();
    throw err;
  });

  let stopping: Promise<void> | undefined;
  const stop = (exitCode: number) => {
    stopping ??= (async () => {
      // Whatever happens, exit by the deadline: a dev daemon must never hang on Ctrl-C.
      setTimeout(() => process.exit(exitCode), SHUTDOWN_DEADLINE_MS).unref();
      await reporter.close();
      await session?.close().catch(() => undefined);
      await repo.close().catch(() => undefined);
      await closeLog();
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
  // Nor must the death of whatever started tsko: stopped as if its terminal had closed.
  onParentDeath(() => void stop(129));

  try {
    reporter.show();
    session = await startDevSession({
      inline,
      config,
      events,
      dockerRepo: repo.dockerRepo,
      ...(repo.embedded ? { embeddedRoot: repo.embedded.root } : {}),
      ...(repo.inProcess ? { inProcess: repo.inProcess } : {}),
      // Targets come from the config the session holds now: a reload with other target settings
      // makes new ones, and checks again that the new target can pull from the registry.
      makeTarget: async (service, request, index, current) => {
        if (factory.config !== current) factory = targetsFor(current);
        await factory.checked;
        return factory.targets.make(service, request, index);
      },
    });
  } catch (err) {
    await reporter.close();
    await repo.close();
    await closeLog();
    throw err;
  }
  // Runs until a signal; the action's promise must not resolve, or commander would return.
  await new Promise<never>(() => {});
}
