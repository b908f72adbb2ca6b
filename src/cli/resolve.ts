// `tsko resolve -f FILE|DIR|- [-R] [-l SELECTOR]`: build and publish every ko:// import path in
// the YAML and print the YAML with digest references on stdout — all of it, or nothing when any
// reference fails. `apply` and `create` reuse this before handing the YAML to kubectl.
// Registration and flags only: the YAML handling and the pipeline load when a command runs
// (resolve-action.ts).
import type { Command } from 'commander';
import { addBuildFlags, collect, type BuildCommandFlags } from './common.js';

export interface ResolveFlags extends BuildCommandFlags {
  filename: string[];
  recursive?: boolean;
  selector?: string;
}

/** The -f/-R/-l flags and ko's build flags, for resolve, apply and create. */
export function addResolveFlags(command: Command): Command {
  return addBuildFlags(
    command
      .option('-f, --filename <path>', 'YAML file, directory of .yaml/.yml/.json files, or - for stdin (repeatable)', collect)
      .option('-R, --recursive', 'also read the directories inside -f directories')
      .option('-l, --selector <selector>', 'only documents whose metadata.labels match (key=value, key!=value, key, !key; comma = and)'),
  );
}

export function registerResolveCommand(program: Command): void {
  const command = program
    .command('resolve')
    .description('build the ko:// import paths in YAML, publish them, and print the YAML with digest references (as `ko resolve`)');
  addResolveFlags(command).action(async (flags: ResolveFlags) => {
    const { resolveYaml } = await import('./resolve-action.js');
    const outcome = await resolveYaml(flags, Boolean(program.opts().verbose));
    process.stdout.write(outcome.yaml);
  });
}
