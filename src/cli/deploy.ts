// `tsko deploy [IMPORTPATH] --target local|kubernetes|cloudrun`: one iteration of the dev loop —
// build, push, deploy, wait — run by the same runner, with the same flags and config as `tsko
// dev`. Exits 0 only once the new revision serves; prints its URL (else its revision name) on
// stdout. The local target runs the revision on this machine, so that one serves until Ctrl-C.
// Registration only: the pipeline and the targets load when the command runs (deploy-action.ts).
import { Option, type Command } from 'commander';
import { addLoopFlags, addTargetFlags, type LoopCommandFlags } from './targets.js';

export function registerDeployCommand(program: Command): void {
  const command = program
    .command('deploy')
    .description('build, push and deploy once; exits 0 when the new revision serves')
    .argument('[importpath]', 'import path or ./dir of a main package', '.');
  addLoopFlags(command, 'local: front port; cloudrun: container port of a service tsko creates (default 8080)').addOption(
    new Option('--target <target>', "where it runs (default: the config's dev.target, else local)").choices(['local', 'kubernetes', 'cloudrun']),
  );
  addTargetFlags(command).action(async (target: string, flags: LoopCommandFlags) => {
    const { runDeploy } = await import('./deploy-action.js');
    await runDeploy(target, flags, Boolean(program.opts().verbose));
  });
}
