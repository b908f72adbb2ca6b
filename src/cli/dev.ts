// `tsko dev [IMPORTPATH|DIR ...]`: the save-to-running daemon. Registration only: the session,
// the watcher, the targets and the dashboard load when the command runs (dev-action.ts).
import { Option, type Command } from 'commander';
import { addLoopFlags, addTargetFlags, wholeNumber, type LoopCommandFlags } from './targets.js';

export function registerDevCommand(program: Command): void {
  const command = program
    .command('dev')
    .description('watch Go services and rebuild, push and redeploy them on every save')
    .argument('[importpaths...]', "import paths or ./dirs of main packages (default: the config's dev.services, else .)");
  addLoopFlags(command, 'local: front port of the first service (the next ones count up); cloudrun: container port of a service tsko creates; default 8080')
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
    const { runDev } = await import('./dev-action.js');
    await runDev(targets, flags, Boolean(program.opts().verbose));
  });
}
