// What a service's build depends on, from the code rather than globs: `go list -deps` gives every
// package the main package imports; those in the main module or workspace (or a `replace` to a
// local directory) are the service's own code, and their source files, embedded files, go.mod and
// go.sum, and the main package's kodata/ are what a save can change. GOROOT and the module cache
// are never watched.
import { dirname, join } from 'node:path';
import { TskoError } from '../errors.js';
import { runGo, type GoRunOptions } from '../go/toolchain.js';

export interface ServiceScope {
  /** Directories whose direct children matter (package dirs, module roots). */
  dirs: Set<string>;
  /** Directories watched with everything below them (kodata/, embedded directories). */
  trees: Set<string>;
  /** Exact files known to be inputs. */
  files: Set<string>;
}

interface ListedDep {
  ImportPath: string;
  Dir?: string;
  Standard?: boolean;
  GoFiles?: string[];
  CgoFiles?: string[];
  SFiles?: string[];
  HFiles?: string[];
  CFiles?: string[];
  EmbedFiles?: string[];
  EmbedPatterns?: string[];
  Module?: { Path: string; Main?: boolean; Dir?: string; GoMod?: string; Replace?: { Path: string; Version?: string; Dir?: string; GoMod?: string } };
  Error?: { Err: string };
}

const FIELDS = 'ImportPath,Dir,Standard,GoFiles,CgoFiles,SFiles,HFiles,CFiles,EmbedFiles,EmbedPatterns,Module,Error';

export async function computeScope(importPath: string, mainDir: string, options: GoRunOptions & { extraFiles?: string[] }): Promise<ServiceScope> {
  const result = await runGo(['list', '-e', '-deps', `-json=${FIELDS}`, '--', importPath], options);
  if (result.exitCode !== 0 && !result.stdout.trim()) {
    throw new TskoError('GO_LIST', `cannot list the dependencies of ${importPath}: ${result.stderr.trim().split('\n')[0] ?? ''}`, { detail: result.stderr });
  }
  const scope: ServiceScope = { dirs: new Set(), trees: new Set([join(mainDir, 'kodata')]), files: new Set(options.extraFiles ?? []) };
  for (const dep of parseJsonStream(result.stdout)) {
    if (dep.Standard || !dep.Dir || !isLocalModule(dep)) continue;
    scope.dirs.add(dep.Dir);
    for (const list of [dep.GoFiles, dep.CgoFiles, dep.SFiles, dep.HFiles, dep.CFiles, dep.EmbedFiles]) {
      for (const name of list ?? []) scope.files.add(join(dep.Dir, name));
    }
    // An embed pattern naming a directory embeds files added to it later too.
    for (const pattern of dep.EmbedPatterns ?? []) {
      if (!/[*?[]/.test(pattern)) scope.trees.add(join(dep.Dir, pattern.replace(/^all:/, '')));
    }
    const goMod = dep.Module?.Replace?.GoMod ?? dep.Module?.GoMod;
    if (goMod) {
      scope.files.add(goMod);
      scope.files.add(join(dirname(goMod), 'go.sum'));
      scope.dirs.add(dirname(goMod));
    }
  }
  // A go.work (workspace) anywhere above changes which modules build.
  const gowork = await runGo(['env', 'GOWORK'], options).catch(() => undefined);
  const workFile = gowork?.stdout.trim();
  if (workFile && workFile !== 'off') {
    scope.files.add(workFile);
    scope.files.add(`${workFile}.sum`);
    scope.dirs.add(dirname(workFile));
  }
  return scope;
}

/** The main module, a workspace module, or a `replace` to a local directory (no version). */
function isLocalModule(dep: ListedDep): boolean {
  const mod = dep.Module;
  if (!mod) return false;
  if (mod.Main) return true;
  return Boolean(mod.Replace && !mod.Replace.Version && mod.Replace.Dir);
}

/** `go list -json` prints concatenated JSON objects, not an array. */
function parseJsonStream(text: string): ListedDep[] {
  const out: ListedDep[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === '}') {
      depth--;
      if (depth === 0 && start >= 0) out.push(JSON.parse(text.slice(start, i + 1)) as ListedDep);
    }
  }
  return out;
}

/** Whether a changed path can affect a build with this scope. */
export function scopeContains(scope: ServiceScope, path: string): boolean {
  if (scope.files.has(path)) return true;
  for (const tree of scope.trees) if (path === tree || path.startsWith(tree + '/')) return true;
  // A new (or deleted) source file in one of the package dirs changes the package.
  if (scope.dirs.has(dirname(path)) && isBuildSource(path)) return true;
  return false;
}

export function isBuildSource(path: string): boolean {
  return /\.(go|s|S|c|h)$/.test(path) && !path.endsWith('_test.go');
}

/** Editor droppings and VCS internals that never trigger a build. */
export function isIgnoredPath(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (path.includes('/.git/') || path.endsWith('/.git')) return true;
  return /^\.#|^#.*#$|~$|\.sw[a-p]$|^4913$|\.tmp$|\.swx$|^\.DS_Store$/.test(name);
}
