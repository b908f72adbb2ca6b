// Running kubectl for apply, create, delete and run: found on PATH before anything is built (so a
// missing kubectl costs no build or push), fed the resolved YAML on stdin, its output passed
// straight through, its exit code returned.
import { isAbsolute } from 'node:path';
import { execa } from 'execa';
import { TskoError } from '../errors.js';
import { findOnPath } from './which.js';

export interface KubectlFlags {
  context?: string;
  namespace?: string;
  kubeconfig?: string;
}

/** The kubectl binary on PATH; a clear error naming it when there is none. */
export function findKubectl(env: Readonly<Record<string, string | undefined>>, name = 'kubectl'): string {
  if (isAbsolute(name)) return name;
  const found = findOnPath(name, env.PATH);
  if (!found) throw kubectlMissing();
  return found;
}

function kubectlMissing(): TskoError {
  return new TskoError('KUBE', 'kubectl was not found on PATH; tsko needs it for this command', {
    hint: 'install kubectl (https://kubernetes.io/docs/tasks/tools/) or add it to PATH; `tsko resolve -f … > out.yaml` needs no kubectl',
  });
}

/** kubectl's global flags that tsko accepts itself and forwards (`--context`, `-n`, `--kubeconfig`). */
export function kubectlGlobalArgs(flags: KubectlFlags): string[] {
  return [
    ...(flags.kubeconfig ? [`--kubeconfig=${flags.kubeconfig}`] : []),
    ...(flags.context ? [`--context=${flags.context}`] : []),
    ...(flags.namespace ? [`--namespace=${flags.namespace}`] : []),
  ];
}

export interface KubectlRun {
  /** Written to kubectl's stdin; without it kubectl reads tsko's own stdin. */
  input?: string;
  signal?: AbortSignal;
}

export async function runKubectl(binary: string, args: string[], options: KubectlRun = {}): Promise<number> {
  const result = await execa(binary, args, {
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'inherit' as const }),
    stdout: 'inherit',
    stderr: 'inherit',
    reject: false,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  });
  if (result.isCanceled) throw new TskoError('ABORTED', 'interrupted');
  if ((result as unknown as { code?: string }).code === 'ENOENT') throw kubectlMissing();
  return result.exitCode ?? 1;
}
