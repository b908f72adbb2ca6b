// `tsko build IMPORTPATH|./DIR ...` (alias `publish`): build each main package into an image and
// publish it; stdout gets exactly one reference per argument, in argument order (an index's
// reference for a multi-platform build; --image-refs also lists its per-platform images).
// Registration only: the pipeline loads when the command runs (build-action.ts).
import type { Command } from 'commander';
import { addBuildFlags, type BuildCommandFlags } from './common.js';

export function registerBuildCommand(program: Command): void {
  const command = program
    .command('build')
    .alias('publish')
    .description('build Go main packages into images and publish them (as `ko build`)')
    .argument('[importpaths...]', 'import paths or ./dirs of main packages', ['.']);
  addBuildFlags(command).action(async (targets: string[], flags: BuildCommandFlags) => {
    const { runBuild } = await import('./build-action.js');
    await runBuild(targets.length > 0 ? targets : ['.'], flags, Boolean(program.opts().verbose));
  });
}
