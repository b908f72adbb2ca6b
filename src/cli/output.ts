// How the CLI prints a failure: one line `tsko: <message>`, then the hint and any detail (compiler
// output), and a stack trace only when --verbose is on.
import { toTskoError } from '../errors.js';
import { redact } from '../redact.js';

export function printError(err: unknown, verbose: boolean): void {
  const error = toTskoError(err);
  const lines = [`tsko: ${error.message}`];
  if (error.detail) lines.push(error.detail.replace(/\s+$/, ''));
  if (error.hint) lines.push(`hint: ${error.hint}`);
  if (verbose && error.stack) lines.push(error.stack);
  process.stderr.write(redact(lines.join('\n')) + '\n');
}
