// The flags `tsko dev` and `tsko deploy` share: the target, the remote targets' settings, the
// naming flags. Only their parsing is here; src/config merges them over the config's dev section.
import { Option, type Command } from 'commander';
import type { DevFlags } from '../config/dev-options.js';
import { TskoError } from '../errors.js';
import { addRepositoryFlags, collect } from './common.js';

/** What commander hands `dev` and `deploy` actions. */
export interface LoopCommandFlags extends Omit<DevFlags, 'targets'> {
  config?: string;
  json?: boolean;
  insecureRegistry?: boolean;
  bare?: boolean;
  baseImportPaths?: boolean;
  preserveImportPaths?: boolean;
}

const DEFAULT_TIMEOUT_S = 300;

export function wholeNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new TskoError('USAGE', `${name} must be a whole number, got "${value}"`);
    return n;
  };
}

export function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new TskoError('USAGE', `--port must be a port number, got "${value}"`);
  return n;
}

/** The flags of `dev` and `deploy` besides the remote targets': config, output, platform, registry, naming. */
export function addLoopFlags(command: Command, portHelp: string): Command {
  return addRepositoryFlags(command)
    .addOption(new Option('--port <n>', portHelp).argParser(portNumber))
    .option('--json', 'print events as JSON lines on stdout')
    .option('--platform <os/arch>', "platform to build (the local target needs this machine's; remote default: linux/amd64)");
}

/** The command line's flags split into what config resolution takes: build flags and dev flags. */
export function loopInline(flags: LoopCommandFlags, targets: string[] | undefined) {
  const { config: configFile, json: _json, insecureRegistry, bare, baseImportPaths, preserveImportPaths, ...dev } = flags;
  return {
    ...(configFile ? { configFile } : {}),
    build: { insecureRegistry, bare, baseImportPaths, preserveImportPaths },
    dev: { ...dev, ...(targets ? { targets } : {}) },
  };
}

function seconds(value: string): number {
  const n = Number(value.replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new TskoError('USAGE', `--timeout must be a positive number of seconds, got "${value}"`);
  return n;
}

/** --target is each command's own; these are the rest. */
export function addTargetFlags(command: Command): Command {
  return command
    .option('--context <name>', 'kubernetes: kubeconfig context (default: current-context)')
    .option('--namespace <ns>', "kubernetes: namespace (default: the context's, else default)")
    .option('--deployment <name>', 'kubernetes: the Deployment to patch (default: the service name)')
    .option('--container <name>', 'kubernetes, cloudrun: the container to update, when there are several')
    .option('-f, --filename <file>', 'kubernetes: apply this YAML (ko:// references resolved) instead of patching; repeatable', collect)
    .option('--project <id>', 'cloudrun: Google Cloud project (default: CLOUDSDK_CORE_PROJECT)')
    .option('--region <region>', 'cloudrun: region (default: CLOUDSDK_RUN_REGION)')
    .option('--service <name>', 'cloudrun: the Cloud Run service (default: the service name)')
    .option('--no-traffic', 'cloudrun: roll a revision that gets no traffic')
    .option('--tag <name>', 'cloudrun: tag the new revision (its own URL)')
    .option('--allow-unauthenticated', 'cloudrun: let anyone invoke the service (roles/run.invoker for allUsers); a created service is private without it')
    .option('--no-allow-unauthenticated', 'cloudrun: leave the IAM policy alone (overrides dev.cloudrun.allowUnauthenticated)')
    .addOption(new Option('--timeout <seconds>', `kubernetes, cloudrun: how long a rollout may take (default ${DEFAULT_TIMEOUT_S})`).argParser(seconds));
}
