// Finds and loads the user's config file: `--config PATH`, else KO_CONFIG_PATH (a file, or a
// directory holding .ko.yaml, as ko), else tsko.config.{ts,mts,js,mjs} or .ko.yaml in the working
// directory, else a tsko.config.* in a parent directory up to the repository root. TypeScript configs are imported by Node directly (type stripping, Node >= 22.18).
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TskoError } from '../errors.js';
import type { UserConfig } from './define.js';
import { validateConfig } from './validate.js';

export const CONFIG_FILE_NAMES = ['tsko.config.ts', 'tsko.config.mts', 'tsko.config.js', 'tsko.config.mjs', '.ko.yaml'];

export interface LoadedConfig {
  file?: string;
  config: UserConfig;
}

export function findConfigFile(cwd: string, explicit: string | undefined, koConfigPath: string | undefined): string | undefined {
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
  // The working directory first, then its parents up to the repository root, so a service dir
  // inside a monorepo (or examples/hello in this one) picks up the project's tsko.config.ts.
  for (let dir = cwd; ; dir = dirname(dir)) {
    const names = dir === cwd ? CONFIG_FILE_NAMES : CONFIG_FILE_NAMES.filter((name) => name !== '.ko.yaml');
    const found = names.map((name) => join(dir, name)).find((file) => existsSync(file));
    if (found) return found;
    if (existsSync(join(dir, '.git')) || dirname(dir) === dir) return undefined;
  }
}

/** `fresh` bypasses Node's module cache, so a dev loop sees an edited config. */
export async function loadConfigFile(file: string | undefined, options: { fresh?: boolean } = {}): Promise<LoadedConfig> {
  if (!file) return { config: {} };
  const name = basename(file);
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
      throw new TskoError('CONFIG_INVALID', `${name}: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    const url = pathToFileURL(file);
    if (options.fresh) url.searchParams.set('t', String(Date.now()));
    try {
      const mod = (await import(url.href)) as { default?: unknown };
      raw = typeof mod.default === 'function' ? await (mod.default as () => unknown)() : mod.default;
    } catch (err) {
      const message = (err as Error).message.split('\n')[0] ?? String(err);
      throw new TskoError('CONFIG_INVALID', `${name}: cannot load: ${message}`, {
        hint: /Unknown file extension|ERR_UNKNOWN_FILE_EXTENSION/.test(String(err)) ? 'TypeScript configs need Node >= 22.18' : undefined,
      });
    }
    if (raw === undefined) throw new TskoError('CONFIG_INVALID', `${name}: has no default export (export default defineConfig({...}))`);
  }
  return { file, config: validateConfig(raw, name) };
}
