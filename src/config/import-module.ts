// Imports a tsko.config.{ts,mts,js,mjs} the way a user's project expects, wherever tsko itself is
// installed: `import { defineConfig } from 'tsko'` resolves to the project's own tsko when it has
// one, and otherwise to the tsko that is running (a global install, or a checkout run by path,
// whose package no node_modules above the config holds). A tsko.config.ts is an ES module whatever
// its package.json says, so Node neither warns about a type-less package.json nor reads it as
// CommonJS. A syntax error comes back as file:line:col, which Node's own message lacks.
import { execFile } from 'node:child_process';
import * as nodeModule from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The running tsko's library entry (dist/src/index.js), what a config's `'tsko'` falls back to. */
const OWN_ENTRY = new URL('../index.js', import.meta.url).href;

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** A config module failed to parse; where, when Node or `node --check` said so. */
export class ConfigSyntaxError extends Error {
  constructor(
    message: string,
    readonly location: SourceLocation | undefined,
  ) {
    super(message);
  }
}

interface ModuleHooks {
  deregister(): void;
}

// node:module's in-thread hooks (Node ≥ 22.15); older Nodes import without them.
type RegisterHooks = (hooks: {
  resolve?: (specifier: string, context: unknown, next: (specifier: string, context: unknown) => { url: string }) => { url: string; shortCircuit?: boolean };
  load?: (url: string, context: { format?: string | null }, next: (url: string, context: unknown) => unknown) => unknown;
}) => ModuleHooks;

/**
 * The hooks live only while one config is imported: they touch nothing but the bare specifier
 * `tsko` when Node cannot find it, and the format of the config file itself.
 */
function registerConfigHooks(file: string, stripped?: string): ModuleHooks | undefined {
  const register = (nodeModule as unknown as { registerHooks?: RegisterHooks }).registerHooks;
  if (typeof register !== 'function') return undefined;
  const configUrl = pathToFileURL(file).href;
  const typescript = TYPESCRIPT.test(file);
  return register({
    resolve(specifier, context, next) {
      if (specifier !== 'tsko') return next(specifier, context);
      try {
        return next(specifier, context);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
        return { url: OWN_ENTRY, shortCircuit: true };
      }
    },
    load(url, context, next) {
      if (stripped !== undefined && url.split('?')[0] === configUrl) return { format: 'module', source: stripped, shortCircuit: true };
      if (typescript && url.split('?')[0] === configUrl) return next(url, { ...context, format: 'module-typescript' });
      return next(url, context);
    },
  });
}

export interface ImportConfigOptions {
  /** A fresh copy, bypassing Node's module cache (a dev loop's edited config). */
  fresh?: boolean;
  /**
   * For a process that stays up (`tsko dev`): a TypeScript config's types are stripped by a short
   * `node` child rather than in this process. Node's own stripping loads its TypeScript parser
   * (a 3.8 MB module and its WebAssembly memory, ~17 MB of RSS) into the process for good; the
   * module compile cache spares that only on a warm start of an unchanged, non-fresh import.
   * A failure in the child falls back to the import here, which reports syntax errors as before.
   */
  stripTypesApart?: boolean;
  signal?: AbortSignal;
}

/** Imports `file` and returns the module. */
export async function importConfigModule(file: string, options: ImportConfigOptions = {}): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file);
  if (options.fresh) url.searchParams.set('t', String(Date.now()));
  const stripped = options.stripTypesApart && TYPESCRIPT.test(file) ? await stripTypesInChild(file, options.signal) : undefined;
  const hooks = registerConfigHooks(file, stripped);
  try {
    return (await import(url.href)) as Record<string, unknown>;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    const location = locationFromStack(err) ?? (await locationFromCheck(file, options.signal));
    throw new ConfigSyntaxError(firstMessageLine(err), location);
  } finally {
    hooks?.deregister();
  }
}

const TYPESCRIPT = /\.m?ts$/;

/** Node's own type stripping (whitespace in place of types, so lines and columns stay), run in a child. */
const STRIP_SCRIPT =
  "process.stdout.write(require('node:module').stripTypeScriptTypes(require('node:fs').readFileSync(process.argv[1], 'utf8')))";

/**
 * `file` as JavaScript, its types stripped by a `node` child; undefined when the child fails (a
 * syntax error: the import in this process then says where), so it never changes an outcome.
 */
function stripTypesInChild(file: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  // NODE_OPTIONS is left out so a preload meant for tsko (a test's --import hook) does not run in it.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--no-warnings', '-e', STRIP_SCRIPT, file],
      { env, timeout: 30_000, maxBuffer: 64 * 1024 * 1024, ...(signal ? { signal } : {}) },
      (error, stdout) => resolve(error ? undefined : stdout),
    );
  });
}

/**
 * Node's TypeScript parser puts the place first in the stack: `<file or URL>:<line>`, the source
 * line (after the one before it, if any), then a caret line under the column.
 */
function locationFromStack(err: Error): SourceLocation | undefined {
  const [head, ...rest] = (err.stack ?? '').split('\n');
  const match = /^(.+):(\d+)$/.exec(head ?? '');
  const caret = rest.slice(0, 3).find((line) => /^\s*\^+\s*$/.test(line));
  if (!match?.[1] || !caret) return undefined;
  const where = match[1];
  const file = where.startsWith('file:') ? fileURLToPath(where.split('?')[0] ?? where) : where;
  return { file, line: Number(match[2]), column: caret.indexOf('^') + 1 };
}

/**
 * A JavaScript module's SyntaxError carries no place at all; `node --check` prints it the same way
 * as above. Only on this error path, and bounded.
 */
function locationFromCheck(file: string, signal: AbortSignal | undefined): Promise<SourceLocation | undefined> {
  if (/\.m?ts$/.test(file)) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile(process.execPath, ['--check', file], { timeout: 10_000, ...(signal ? { signal } : {}) }, (_error, _stdout, stderr) => {
      const fake = new Error();
      fake.stack = String(stderr);
      resolve(locationFromStack(fake));
    });
  });
}

function firstMessageLine(err: Error): string {
  return err.message.split('\n')[0] ?? String(err);
}
