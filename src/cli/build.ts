// `tsko build` (alias `publish`). (Being written.)
import type { Command } from 'commander';

export function registerBuildCommand(program: Command): void {
  program.command('build').alias('publish').description('build and publish container images from Go import paths');
}
