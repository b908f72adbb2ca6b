// Finds and loads the user's config file: `--config PATH`, else KO_CONFIG_PATH (a file, or a
// directory holding .ko.yaml, as ko), else the nearest tsko.config.{ts,mts,js,mjs} walking up from
// each ./dir on the command line and then from the working directory (a .ko.yaml only in the
// working directory, as ko), never above the repository root, or outside a repository above the
// Go module root. TypeScript configs are imported by Node directly (type stripping, Node >= 22.18).
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { TskoError } from '../errors.js';
import { isLocalPath } from '../publish/builder.js';
import type { UserConfig } from './define.js';
import { ConfigSyntaxError, importConfigModule, type SourceLocation } from './import-module.js';
import { validateConfig } from './validate.js';

export const CONFIG_FILE_NAMES = ['tsko.config.ts', 'tsko.config.mts', 'tsko.config.js', 'tsko.config.mjs', '.ko.yaml'];
const TSKO_CONFIG_NAMES = CONFIG_FILE_NAMES.filter((name) => name !== '.ko.yaml');

export interface LoadedConfig {
  file?: string;
  config: UserConfig;
}

export interface ConfigSearch {
  cwd: string;
  /** --config PATH, relative to cwd. */
  explicit?: string | undefined;
  /** KO_CONFIG_PATH. */
  koConfigPath?: string | undefined;
  /** The command line's main packages; the ./dirs (and absolute dirs) among them start a search too. */
  targets?: readonly string[] | undefined;
}

export function findConfigFile(search: ConfigSearch): string | undefined {
  const { cwd, explicit, koConfigPath } = search;
  if (explicit) {
    const file = resolve(cwd, explicit);
    if (!existsSync(file)) throw new TskoError('CONFIG_LOAD', `config file ${explicit} does not exist`);
    return file;
  }
  if (koConfigPath) {
    const path = resolve(cwd, koConfigPath);
    const file = existsSync(path) && statSync(path).isDirectory() ? join(path, '.ko.yaml') : path;
    if (!existsSync(file)) throw new TskoError('CONFIG_LOAD', `KO_CONFIG_PATH points at ${koConfigPath}, which has no config file`);
    return file;
  }
  // The services' own directories first: `tsko dev ./services/api` from anywhere finds the
  // config beside that service's go.mod. Services with different configs need --config.
  const fromTargets = new Map<string, string>();
  for (const target of search.targets ?? []) {
    if (!isDirectoryTarget(target)) continue;
    const dir = resolve(cwd, target);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    const found = nearestConfig(dir, false);
    if (found && !fromTargets.has(found)) fromTargets.set(found, target);
  }
  if (fromTargets.size > 1) {
    const which = [...fromTargets].map(([file, target]) => `${target} → ${displayPath(file, cwd)}`).join(', ');
    throw new TskoError('CONFIG_LOAD', `the services on the command line have different config files (${which})`, { hint: 'run one tsko per config, or pass --config' });
  }
  const [fromTarget] = fromTargets.keys();
  return fromTarget ?? nearestConfig(cwd, true);
}

/**
 * The first tsko.config.* from `start` up to the search's top (a .ko.yaml only in `start`, and only
 * when it is the working directory): the repository root (a directory with .git) when `start` is
 * in one, else the Go module root (the nearest directory with go.mod or go.work), else `start`
 * alone. So a service inside a monorepo picks up the project's config, and a module outside any
 * repository never picks up a stray config in a parent such as /tmp or $HOME.
 */
function nearestConfig(start: string, koYamlToo: boolean): string | undefined {
  const dirs = searchedDirs(start);
  for (const dir of dirs) {
    const names = koYamlToo && dir === start ? CONFIG_FILE_NAMES : TSKO_CONFIG_NAMES;
    const found = names.map((name) => join(dir, name)).find((file) => existsSync(file));
    if (found) return found;
  }
  return undefined;
}

/** `start` and its parents, up to the search's top (see nearestConfig). */
export function searchedDirs(start: string): string[] {
  const chain: string[] = [];
  for (let dir = start; ; dir = dirname(dir)) {
    chain.push(dir);
    if (existsSync(join(dir, '.git'))) return chain;
    if (dirname(dir) === dir) break;
  }
  // No repository above: stop at the Go module root.
  const moduleRoot = chain.findIndex((dir) => existsSync(join(dir, 'go.mod')) || existsSync(join(dir, 'go.work')));
  return moduleRoot === -1 ? [start] : chain.slice(0, moduleRoot + 1);
}

/** ./dir, ../dir, . and absolute paths name directories (as the builder reads them); anything else is an import path. */
function isDirectoryTarget(target: string): boolean {
  return isLocalPath(target.startsWith('ko://') ? target.slice('ko://'.length) : target);
}

/** How messages name a config file: relative to the working directory when it is below it. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

function at(location: SourceLocation, cwd: string): string {
  return `${displayPath(location.file, cwd)}:${location.line}:${location.column}`;
}

/** `fresh` bypasses Node's module cache, so a dev loop sees an edited config. */
export async function loadConfigFile(file: string | undefined, options: { fresh?: boolean; cwd?: string; stripTypesApart?: boolean } = {}): Promise<LoadedConfig> {
  if (!file) return { config: {} };
  const cwd = options.cwd ?? dirname(file);
  const name = displayPath(file, cwd);
  let raw: unknown;
  if (/\.ya?ml$/.test(file)) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new TskoError('CONFIG_LOAD', `cannot read ${file}: ${(err as Error).message}`);
    }
    // The YAML parser loads only for a .ko.yaml: most commands never read one.
    const { parse: parseYaml } = await import('yaml');
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      const pos = (err as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
      const message = ((err as Error).message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new TskoError('CONFIG_INVALID', pos ? `${name}:${pos.line}:${pos.col}: ${message}` : `${name}: ${message}`);
    }
  } else {
    let mod: Record<string, unknown>;
    try {
      mod = await importConfigModule(file, { fresh: options.fresh ?? false, stripTypesApart: options.stripTypesApart ?? false });
    } catch (err) {
      if (err instanceof ConfigSyntaxError) {
        throw new TskoError('CONFIG_INVALID', `${err.location ? at(err.location, cwd) : name}: syntax error: ${err.message}`);
      }
      const message = (err as Error).message.split('\n')[0] ?? String(err);
      throw new TskoError('CONFIG_INVALID', `${name}: cannot load: ${message}`, {
        hint: /Unknown file extension|ERR_UNKNOWN_FILE_EXTENSION/.test(String(err)) ? 'TypeScript configs need Node >= 22.18' : undefined,
      });
    }
    try {
      raw = typeof mod.default === 'function' ? await (mod.default as () => unknown)() : mod.default;
    } catch (err) {
      throw new TskoError('CONFIG_INVALID', `${name}: its default export threw: ${(err as Error).message.split('\n')[0] ?? String(err)}`);
    }
    if (raw === undefined) throw new TskoError('CONFIG_INVALID', `${name}: has no default export (export default defineConfig({...}))`);
  }
  return { file, config: validateConfig(raw, name) };
}
