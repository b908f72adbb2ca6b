// ko's kubectl commands: `tsko apply|create -f …` (resolve, then `kubectl apply|create -f -`),
// `tsko delete …` (kubectl delete, unchanged), and `tsko run IMPORTPATH` (publish, then
// `kubectl run <name> --image <ref> --attach --rm --restart=Never`). kubectl's own flags go after
// `--`; --context, -n/--namespace and --kubeconfig are accepted directly and forwarded.
import { posix } from 'node:path';
import type { Command } from 'commander';
import { TskoError } from '../errors.js';
import { addBuildFlags, type BuildCommandFlags } from './common.js';
import { findKubectl, kubectlGlobalArgs, runKubectl, type KubectlFlags } from './kubectl.js';
import { addResolveFlags, resolveYaml, type ResolveFlags } from './resolve.js';
import { openCommandSession, printedLine, writeImageRefs } from './session.js';

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
      const kubectl = findKubectl(process.env);
      process.exitCode = await runKubectl(kubectl, ['delete', ...kubectlArgs]);
    });

  const run = program
    .command('run')
    .description('publish a main package and run it once in the cluster: `kubectl run <name> --image <ref> --attach --rm --restart=Never` (as `ko run`); arguments after -- go to the container')
    .argument('<importpath>', 'import path or ./dir of a main package')
    .argument('[containerArgs...]', 'arguments for the container, after --');
  addKubectlFlags(addBuildFlags(run)).action(async (target: string, containerArgs: string[], raw: BuildCommandFlags & KubectlFlags) => {
    process.exitCode = await runOnce(target, containerArgs, raw, Boolean(program.opts().verbose));
  });
}

async function runResolveAndKubectl(verb: 'apply' | 'create', kubectlArgs: string[], raw: ResolveFlags & KubectlFlags, verbose: boolean): Promise<number> {
  // Before any build: a missing kubectl must not cost a build and a push.
  const kubectl = findKubectl(process.env);
  const { context: _context, namespace: _namespace, kubeconfig: _kubeconfig, ...flags } = raw;
  const outcome = await resolveYaml(flags, verbose);
  if (outcome.nothingSelected) return 0;
  if (outcome.yaml.trim() === '') {
    process.stderr.write(`tsko: no documents to ${verb}\n`);
    return 0;
  }
  return runKubectl(kubectl, [verb, ...kubectlGlobalArgs(raw), '-f', '-', ...kubectlArgs], { input: outcome.yaml });
}

async function runOnce(target: string, containerArgs: string[], raw: BuildCommandFlags & KubectlFlags, verbose: boolean): Promise<number> {
  if (target.startsWith('-')) throw new TskoError('USAGE', `expected an import path first, got "${target}"`);
  const kubectl = findKubectl(process.env);
  const { context: _context, namespace: _namespace, kubeconfig: _kubeconfig, config: configFile, ...build } = raw;
  const session = await openCommandSession({ command: 'run', ...(configFile ? { configFile } : {}), build }, verbose);
  const { pipeline, config, events, signal } = session;
  let reference: string;
  try {
    const result = await pipeline.publish(target, { events, signal });
    reference = printedLine(result, config);
    if (config.build.imageRefs) await writeImageRefs(config.build.imageRefs, pipeline.published, config);
  } finally {
    await session.close();
  }
  const args = [
    'run',
    podName(reference),
    ...kubectlGlobalArgs(raw),
    '--image',
    reference,
    '--attach',
    '--rm',
    '--restart=Never',
    '--log-flush-frequency=1s',
    ...(containerArgs.length > 0 ? ['--', ...containerArgs] : []),
  ];
  process.stderr.write(`$ kubectl ${args.join(' ')}\n`);
  return runKubectl(kubectl, args);
}

/** ko names the pod after the image repository's last element, made a valid DNS-1123 label. */
export function podName(reference: string): string {
  const repository = (reference.split('@')[0] ?? '').replace(/:[^:/]+$/, '');
  const label = posix
    .basename(repository)
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || 'tsko-run';
}
