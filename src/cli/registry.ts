// `tsko registry serve|gc`: run the embedded OCI registry in the foreground, or collect its
// garbage. Thin: parse flags, read the environment for the default root, call the library, print
// one line on stderr.
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { TskoError } from '../errors.js';
import {
  DEFAULT_REGISTRY_ADDR,
  defaultRegistryRoot,
  gcRegistry,
  loadHtpasswd,
  loadTokenFile,
  startRegistryServer,
  type RegistryAuth,
} from './registry-server.js';
import { redact } from '../redact.js';

interface ServeFlags {
  addr: string;
  root?: string;
  allowRemote?: boolean;
  htpasswd?: string;
  tokenFile?: string;
  maxBody?: number;
  uploadIdleSeconds?: number;
}

interface GcFlags {
  root?: string;
  dryRun?: boolean;
  graceSeconds?: number;
  untagged?: boolean;
  keep?: number;
  uploadIdleSeconds?: number;
}

function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function say(line: string): void {
  process.stderr.write(redact(line) + '\n');
}

function rootFrom(flag: string | undefined): string {
  return flag ? resolve(flag) : defaultRegistryRoot(process.env, homedir());
}

export function registerRegistryCommand(program: Command): void {
  const registry = program.command('registry').description('run or maintain the embedded OCI registry');

  registry
    .command('serve')
    .description('serve the embedded OCI registry until interrupted')
    .option('--addr <host:port>', 'address to listen on', DEFAULT_REGISTRY_ADDR)
    .option('--root <dir>', 'storage root (default $XDG_CACHE_HOME/tsko/registry or ~/.cache/tsko/registry)')
    .option('--allow-remote', 'allow a non-loopback address (requires --htpasswd or --token-file)')
    .option('--htpasswd <file>', 'require Basic auth from this htpasswd file (bcrypt entries)')
    .option('--token-file <file>', 'require this token (as Bearer, or as the Basic password)')
    .option('--max-body <bytes>', 'largest blob accepted, in bytes', nonNegativeInteger)
    .option('--upload-idle-seconds <n>', 'remove an upload session after this long without new bytes (default 3600)', nonNegativeInteger)
    .action(async (flags: ServeFlags) => {
      await serve(flags, Boolean(program.opts().verbose));
    });

  registry
    .command('gc')
    .description('delete blobs that no manifest references (and, asked to, manifests no tag references)')
    .option('--root <dir>', 'storage root (default $XDG_CACHE_HOME/tsko/registry or ~/.cache/tsko/registry)')
    .option('--dry-run', 'report what would be deleted, delete nothing')
    .option('--untagged', 'first remove manifests no tag reaches (directly, through an index, or as a referrer of one)')
    .option('--keep <n>', 'first keep only the newest N images of each repository, removing the others and their tags', nonNegativeInteger)
    .option(
      '--grace-seconds <n>',
      'leave blobs and manifests younger than this alone: a push may be about to use them (default 900; 0 when nothing is pushing)',
      nonNegativeInteger,
    )
    .option('--upload-idle-seconds <n>', 'remove upload sessions without new bytes for this long (default 3600)', nonNegativeInteger)
    .action(async (flags: GcFlags) => {
      const root = rootFrom(flags.root);
      const result = await gcRegistry(root, {
        ...(flags.dryRun ? { dryRun: true } : {}),
        ...(flags.untagged ? { untagged: true } : {}),
        ...(flags.keep !== undefined ? { keep: flags.keep } : {}),
        ...(flags.graceSeconds !== undefined ? { graceMs: flags.graceSeconds * 1000 } : {}),
        ...(flags.uploadIdleSeconds !== undefined ? { uploadIdleMs: flags.uploadIdleSeconds * 1000 } : {}),
      });
      const verb = result.dryRun ? 'would delete' : 'deleted';
      const removesManifests = flags.untagged === true || flags.keep !== undefined;
      const graceNote = flags.graceSeconds === undefined ? ' (--grace-seconds 0 skips the grace period when nothing is pushing)' : '';
      say(
        `tsko registry gc: ` +
          (removesManifests ? `${verb} ${result.manifestsDeleted} manifests and ${result.tagsRemoved} tags, ` : '') +
          `${verb} ${result.blobsDeleted} blobs (${result.bytesFreed} bytes), kept ${result.blobsKept}` +
          (result.manifestsInGrace > 0 ? `, ${result.manifestsInGrace} manifests too recent to remove` : '') +
          (result.blobsInGrace > 0 ? `, ${result.blobsInGrace} unreferenced blobs too recent to delete` : '') +
          (result.manifestsInGrace > 0 || result.blobsInGrace > 0 ? graceNote : '') +
          (result.uploadsDeleted > 0 ? `, ${verb} ${result.uploadsDeleted} abandoned uploads` : '') +
          ` (root ${root})`,
      );
    });
}

async function serve(flags: ServeFlags, verbose: boolean): Promise<void> {
  if (flags.htpasswd && flags.tokenFile) throw new TskoError('USAGE', '--htpasswd and --token-file are exclusive; pick one');
  let auth: RegistryAuth | undefined;
  if (flags.htpasswd) auth = await loadHtpasswd(flags.htpasswd);
  else if (flags.tokenFile) auth = await loadTokenFile(flags.tokenFile);
  const root = rootFrom(flags.root);

  const running = await startRegistryServer({
    addr: flags.addr,
    root,
    ...(auth ? { auth } : {}),
    ...(flags.allowRemote ? { allowRemote: true } : {}),
    ...(flags.maxBody !== undefined ? { maxBlobBytes: flags.maxBody } : {}),
    ...(flags.uploadIdleSeconds !== undefined ? { uploadIdleMs: Math.max(1, flags.uploadIdleSeconds) * 1000 } : {}),
    onError: (err) => say(`tsko registry: ${verbose && err instanceof Error && err.stack ? err.stack : String((err as Error)?.message ?? err)}`),
    ...(verbose ? { onDebug: (message: string) => say(`tsko registry: debug: ${message}`) } : {}),
  });
  say(`tsko registry: serving ${running.url} (root ${root})`);

  await new Promise<void>((resolveStop) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolveStop();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await running.close();
}
