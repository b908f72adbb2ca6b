// `go list`: what an argument (import path or ./dir) names, and whether it is a main package.
import { TskoError } from '../errors.js';
import { runGo, type GoRunOptions } from './toolchain.js';

export interface GoPackage {
  importPath: string;
  name: string;
  dir: string;
  moduleDir?: string;
  modulePath?: string;
  embedFiles: string[];
}

interface ListedPackage {
  ImportPath: string;
  Name?: string;
  Dir?: string;
  Module?: { Path: string; Dir?: string };
  EmbedFiles?: string[];
  Error?: { Err: string; Pos?: string };
}

/** Lists one package; throws a clear error if it does not exist or does not compile far enough to list. */
export async function listPackage(target: string, options: GoRunOptions): Promise<GoPackage> {
  // -find: the package alone, its imports not resolved (a third of the time on a service with many
  // dependencies); a broken import is go build's to report, with its file and line.
  const result = await runGo(['list', '-find', '-e', '-json=ImportPath,Name,Dir,Module,EmbedFiles,Error', '--', target], options);
  if (result.exitCode !== 0 && !result.stdout.trim()) {
    throw new TskoError('GO_LIST', `cannot load package "${target}": ${firstLine(result.stderr)}`, {
      detail: result.stderr.trim() || undefined,
      hint: hintFor(result.stderr),
    });
  }
  let listed: ListedPackage;
  try {
    listed = JSON.parse(result.stdout) as ListedPackage;
  } catch {
    throw new TskoError('GO_LIST', `cannot load package "${target}": unexpected output from go list`, { detail: result.stdout });
  }
  if (listed.Error && !listed.Name) {
    throw new TskoError('GO_LIST', `cannot load package "${target}": ${firstLine(listed.Error.Err)}`, {
      detail: listed.Error.Err,
      hint: hintFor(listed.Error.Err),
    });
  }
  return {
    importPath: listed.ImportPath,
    name: listed.Name ?? '',
    dir: listed.Dir ?? options.cwd,
    ...(listed.Module?.Dir ? { moduleDir: listed.Module.Dir } : {}),
    ...(listed.Module?.Path ? { modulePath: listed.Module.Path } : {}),
    embedFiles: listed.EmbedFiles ?? [],
  };
}

/** Like listPackage, but the package must be `package main`, as every image entrypoint must. */
export async function listMainPackage(target: string, options: GoRunOptions): Promise<GoPackage> {
  const pkg = await listPackage(target, options);
  if (pkg.name !== 'main') {
    throw new TskoError('GO_NOT_MAIN', `"${target}" (${pkg.importPath}) is package ${pkg.name || '(none)'}, not a main package`, {
      hint: 'tsko builds commands: point it at a directory whose Go files say `package main`',
    });
  }
  return pkg;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

function hintFor(message: string): string | undefined {
  if (/go\.mod file not found|cannot find main module/.test(message)) return 'run tsko from inside a Go module, or pass a ./dir inside one';
  if (/is not in std|cannot find module providing package|no required module provides/.test(message)) {
    return 'check the import path, or pass the package directory as ./dir';
  }
  return undefined;
}
