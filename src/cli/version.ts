// `tsko version`: prints tsko's version, as `ko version` prints ko's. Read from package.json next
// to the compiled CLI, so the command loads nothing but this file and commander.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

/** package.json's version: this file runs from dist/src/cli/, three levels below the package. */
export function tskoVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

export function registerVersionCommand(program: Command): void {
  program
    .command('version')
    .description("print tsko's version")
    .action(() => {
      process.stdout.write(`${tskoVersion()}\n`);
    });
}
