// ko's kubectl commands: `tsko apply|create -f …` (resolve, then `kubectl apply|create -f -`),
// `tsko delete …` (kubectl delete, unchanged), and `tsko run IMPORTPATH` (publish, then
// `kubectl run <name> --image <ref> --attach --rm --restart=Never`). kubectl's own flags go after
// `--`; --context, -n/--namespace and --kubeconfig are accepted directly and forwarded.
// Registration only: kubectl, the YAML handling and the pipeline load when a command runs
// (apply-action.ts).
import type { Command } from 'commander';
import { addBuildFlags, type BuildCommandFlags } from './common.js';
import type { KubectlFlags } from './kubectl.js';
import { addResolveFlags, type ResolveFlags } from './resolve.js';

function addKubectlFlags(command: Command): Command {
  return command
    .option('--context <name>', 'kubeconfig context for kubectl')
    .option('-n, --namespace <namespace>', 'namespace for kubectl')
    .option('--kubeconfig <file>', 'kubeconfig file for kubectl');
}

export function registerKubectlCommands(program: Command): void {
  for (const verb of ['apply', 'create'] as const) {
    const command = program
      .command(verb)
      .description(`resolve ko:// references in YAML (as \`tsko resolve\`), then \`kubectl ${verb} -f -\` it; kubectl flags after --`)
      .argument('[kubectlArgs...]', `extra arguments for kubectl ${verb}, after --`);
    addKubectlFlags(addResolveFlags(command)).action(async (kubectlArgs: string[], raw: ResolveFlags & KubectlFlags) => {
      const { runResolveAndKubectl } = await import('./apply-action.js');
      process.exitCode = await runResolveAndKubectl(verb, kubectlArgs, raw, Boolean(program.opts().verbose));
    });
  }

  program
    .command('delete')
    .description('run `kubectl delete` with these arguments (as `ko delete`)')
    .argument('[kubectlArgs...]', 'arguments for kubectl delete')
    .allowUnknownOption()
    .helpOption('--tsko-help', 'help for tsko delete (every other flag goes to kubectl)')
    .action(async (kubectlArgs: string[]) => {
      const { runDelete } = await import('./apply-action.js');
      process.exitCode = await runDelete(kubectlArgs);
    });

  const run = program
    .command('run')
    .description('publish a main package and run it once in the cluster: `kubectl run <name> --image <ref> --attach --rm --restart=Never` (as `ko run`); arguments after -- go to the container')
    .argument('<importpath>', 'import path or ./dir of a main package')
    .argument('[containerArgs...]', 'arguments for the container, after --');
  addKubectlFlags(addBuildFlags(run)).action(async (target: string, containerArgs: string[], raw: BuildCommandFlags & KubectlFlags) => {
    const { runOnce } = await import('./apply-action.js');
    process.exitCode = await runOnce(target, containerArgs, raw, Boolean(program.opts().verbose));
  });
}
