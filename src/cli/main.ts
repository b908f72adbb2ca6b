// tsko's command line: one file per command registers itself on the program; this file only wires
// them together and turns a thrown error into one line (plus a hint) and a non-zero exit.
// Registering loads commander and the flags' parsers only: each command's action imports its own
// modules when it runs, so `tsko version` or `--help` never loads the pipeline, Ink or the clouds'
// clients (test/integration/startup.test.ts holds that).
import { Command, CommanderError } from 'commander';
import { registerKubectlCommands } from './apply.js';
import { registerBuildCommand } from './build.js';
import { registerDeployCommand } from './deploy.js';
import { registerDevCommand } from './dev.js';
import { registerLoginCommand, registerLogoutCommand } from './login.js';
import { registerRegistryCommand } from './registry.js';
import { registerResolveCommand } from './resolve.js';
import { registerVersionCommand } from './version.js';
import { printError } from './output.js';

export function createProgram(): Command {
  const program = new Command('tsko')
    .description('Build Go services into OCI images the way ko does, and redeploy them on every save')
    .option('-v, --verbose', 'print debug logs and stack traces to stderr')
    // Each command's --help lists -v too (README's flag lists are checked against these).
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerBuildCommand(program);
  registerResolveCommand(program);
  registerKubectlCommands(program);
  registerDevCommand(program);
  registerDeployCommand(program);
  registerRegistryCommand(program);
  registerLoginCommand(program);
  registerLogoutCommand(program);
  registerVersionCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (help, version, or a usage error).
      return err.exitCode;
    }
    printError(err, Boolean(program.opts().verbose));
    return 1;
  }
}

const code = await main(process.argv);
process.exitCode = code;
