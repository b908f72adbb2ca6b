// `tsko registry serve|gc`: the embedded OCI registry. (Being written; see src/registry/server/.)
import type { Command } from 'commander';

export function registerRegistryCommand(program: Command): void {
  program.command('registry').description('run or maintain the embedded OCI registry');
}
