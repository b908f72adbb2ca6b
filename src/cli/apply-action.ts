// What `tsko apply|create|delete|run` do once their flags are parsed (apply.ts registers them):
// find kubectl before anything is built, resolve or publish through one command session, then
// hand the YAML or the reference to kubectl and return its exit code.
import { posix } from 'node:path';
import { TskoError } from '../errors.js';
import type { BuildCommandFlags } from './common.js';
import { findKubectl, kubectlGlobalArgs, runKubectl, type KubectlFlags } from './kubectl.js';
import type { ResolveFlags } from './resolve.js';
import { resolveYaml } from './resolve-action.js';
import { openCommandSession, printedLine, writeImageRefs } from './session.js';

export async function runDelete(kubectlArgs: string[]): Promise<number> {
  const kubectl = findKubectl(process.env);
  return runKubectl(kubectl, ['delete', ...kubectlArgs]);
}

export async function runResolveAndKubectl(verb: 'apply' | 'create', kubectlArgs: string[], raw: ResolveFlags & KubectlFlags, verbose: boolean): Promise<number> {
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

export async function runOnce(target: string, containerArgs: string[], raw: BuildCommandFlags & KubectlFlags, verbose: boolean): Promise<number> {
  if (target.startsWith('-')) throw new TskoError('USAGE', `expected an import path first, got "${target}"`);
  const kubectl = findKubectl(process.env);
  const { context: _context, namespace: _namespace, kubeconfig: _kubeconfig, config: configFile, ...build } = raw;
  const session = await openCommandSession({ command: 'run', targets: [target], ...(configFile ? { configFile } : {}), build }, verbose);
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
