// Flags shared by the commands that build images (build, resolve, apply, create, run), defined
// once with ko's names. Only their parsing is here: src/config merges them over the config file.
import { Command, Option } from 'commander';
import type { BuildFlags } from '../config/build-options.js';
import { TskoError } from '../errors.js';

/** What commander hands an action of a command with the build flags. */
export interface BuildCommandFlags extends BuildFlags {
  config?: string;
}

/** commander: a repeatable flag's values, in order. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
const collectList = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

function parseBool(value: string | undefined): boolean {
  if (value === undefined || value === '' || value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new TskoError('USAGE', `expected true or false, got "${value}"`);
}

function parseJobs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new TskoError('USAGE', `--jobs must be a positive whole number, got "${value}"`);
  return n;
}

/** Where images go and how they are named: every command that pushes takes these, with ko's names. */
export function addRepositoryFlags(command: Command): Command {
  return command
    .option('--config <path>', 'config file (default: the nearest tsko.config.ts above the ./dir arguments or the working directory, or a .ko.yaml in it)')
    .option('--bare', 'use KO_DOCKER_REPO as the image name, without a suffix')
    .option('-B, --base-import-paths', "name images KO_DOCKER_REPO/<import path's last element>")
    .option('-P, --preserve-import-paths', 'name images KO_DOCKER_REPO/<full import path>')
    .option('--insecure-registry', 'talk plain http (or unverified https) to the registry');
}

export function addBuildFlags(command: Command): Command {
  return addRepositoryFlags(command)
    .option('-t, --tags <tags>', 'tags to push (repeatable or comma-separated)', collectList)
    .option('--tag-only', 'print name:tag instead of the digest reference (needs exactly one tag, not latest)')
    .addOption(new Option('--push [bool]', 'push images to KO_DOCKER_REPO').argParser(parseBool).default(true))
    .option('--oci-layout-path <dir>', 'also write the image into this OCI layout directory')
    .option('--tarball <file>', 'also write the image as a docker-loadable tarball')
    .option('--image-refs <file>', 'write the published references to this file, one per line')
    .option('--image-label <key=value>', 'label on the image config (repeatable)', collect)
    .option('--image-annotation <key=value>', 'annotation on the image manifest (repeatable)', collect)
    .option('--image-user <user>', 'the user the image runs as')
    .option('--platform <platforms>', 'os/arch[/variant], comma-separated or repeated', collectList)
    .addOption(new Option('-j, --jobs <n>', 'concurrent go builds (default: the number of cores)').argParser(parseJobs))
    .option('--ldflags <flags>', 'linker flags; override the config (repeatable)', collect)
    .addOption(new Option('--sbom <format>', 'SBOM to publish').choices(['spdx', 'none']).default('spdx'))
    .option('--sbom-dir <dir>', 'also write SBOMs into this directory')
    .option('--disable-optimizations', 'build with -gcflags "all=-N -l" for debuggers')
    .addOption(new Option('--layer-compression <format>', 'app layers as gzip (default, as ko) or zstd (OCI bases only; see README for who reads it)').choices(['gzip', 'zstd']))
    .option('-L, --local', "load into a local Docker daemon (not supported: tsko doesn't use Docker)");
}
