// `tsko dev [IMPORTPATH|DIR ...]`: the save-to-running daemon. Thin: flags → config → a dev
// session with a reporter; Ctrl-C or SIGTERM stops everything within two seconds.
import { Option, type Command } from 'commander';
import { resolveConfig } from '../config/resolve.js';
import { targetFactory } from '../deploy/targets.js';
import { startDevSession, type DevSession } from '../dev/session.js';
import { createEventBus } from '../events.js';
import { createReporter, pickReporter } from '../../ui/reporters.js';
import { resolveDockerRepo } from './docker-repo.js';
import { openUrl } from './open-url.js';
import { addLoopFlags, addTargetFlags, loopInline, wholeNumber, type LoopCommandFlags } from './targets.js';

const SHUTDOWN_DEADLINE_MS = 2000;

export function registerDevCommand(program: Command): void {
  const command = program
    .command('dev')
    .description('watch Go services and rebuild, push and redeploy them on every save')
    .argument('[importpaths...]', "import paths or ./dirs of main packages (default: the config's dev.services, else .)");
  addLoopFlags(command, 'front port of the first service (the next ones count up); default 8080')
    .addOption(new Option('--target <target>', "where revisions run (default: the config's dev.target, else local)").choices(['local', 'kubernetes', 'cloudrun']))
    .addOption(new Option('--keep-images <n>', 'images kept per repository in the embedded registry (default 20)').argParser(wholeNumber('--keep-images')))
    .addOption(
      new Option('--layer-compression <mode>', 'app layers as gzip (on every core), zstd (OCI bases only) or plain tar; auto: plain tar when the registry is on this machine and the target local, else gzip')
        .choices(['auto', 'gzip', 'zstd', 'none'])
        .default('auto'),
    )
    .addOption(new Option('--ready-timeout <ms>', 'how long a new local revision has to answer on PORT (default 10000)').argParser(wholeNumber('--ready-timeout')))
    .addOption(new Option('--debounce <ms>', 'quiet time after a save before building').argParser(wholeNumber('--debounce')).default(10).hideHelp());
  addTargetFlags(command).action(async (targets: string[], flags: LoopCommandFlags) => {
    await runDev(targets, flags, Boolean(program.opts().verbose));
  });
}

async function runDev(targets: string[], flags: LoopCommandFlags, verbose: boolean): Promise<void> {
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
  for (const message of config.warnings) events.emit({ type: 'log', level: 'warn', message });
  // One factory per resolved config: its targets share a session's state (the pushed references a
  // manifest resolves, one token source); a reload with other target settings gets a new one.
  // The registry check runs once per factory: before anything starts, and again after a reload
  // that changed the target (its targets then fail to be made, saying why).
  const repo = await resolveDockerRepo(config, events);
  const targetsFor = (resolved: typeof config) => {
    const targets = targetFactory(resolved, events, 'dev');
    return { config: resolved, targets, checked: targets.checkRegistry(repo.dockerRepo, false) };
  };
  let factory = targetsFor(config);
  await factory.checked.catch(async (err: unknown) => {
    await repo.close();
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
      events,
      dockerRepo: repo.dockerRepo,
      ...(repo.embedded ? { embeddedRoot: repo.embedded.root } : {}),
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
    throw err;
  }
  // Runs until a signal; the action's promise must not resolve, or commander would return.
  await new Promise<never>(() => {});
}
