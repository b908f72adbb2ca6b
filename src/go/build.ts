// `go build` of one main package for one platform, the way ko runs it: CGO off, the platform's
// GOOS/GOARCH, -trimpath, the config's env/flags/ldflags. The output path is stable per package
// and platform so a warm build lets Go skip relinking an unchanged binary.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TskoError } from '../errors.js';
import type { Diagnostic } from '../events.js';
import type { Platform } from '../image/types.js';
import { formatPlatform, goPlatformEnv } from './platform.js';
import { runGo } from './toolchain.js';

export interface GoBuildOptions {
  goBinary: string;
  importPath: string;
  /** Where `go build` runs (the package's module, or the build config's dir). */
  cwd: string;
  platform: Platform;
  /** The process environment the user gave tsko (already resolved by config). */
  baseEnv: Record<string, string>;
  /** The build config's env (KEY=VALUE), applied last so it wins, as in ko. */
  env: string[];
  flags: string[];
  ldflags: string[];
  output: string;
  /**
   * Where go writes its action graph (`-debug-actiongraph`), from which the build tells how many
   * packages it compiled rather than took from the build cache; none when not given.
   */
  actionGraph?: string;
  signal?: AbortSignal;
  /** Called once go build is running (see GoRunOptions.whileRunning). */
  whileRunning?: () => void;
}

/** How much of a build go actually did: packages compiled, out of the packages it needed. */
export interface GoBuildWork {
  compiled: number;
  packages: number;
}

export async function goBuild(options: GoBuildOptions): Promise<GoBuildWork | undefined> {
  // Precedence as ko: CGO_ENABLED=0, then the environment, then the config's env; the last
  // duplicate wins, so a user's CGO_ENABLED=1 overrides ours. GOOS/GOARCH always follow the
  // platform being built (the environment's only choose the default platform).
  const env: Record<string, string> = { CGO_ENABLED: '0', ...options.baseEnv, ...goPlatformEnv(options.platform) };
  for (const entry of options.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  if (/(^|\s)-toolexec/.test(env.GOFLAGS ?? '')) {
    throw new TskoError('GO_BUILD', 'GOFLAGS contains -toolexec, which tsko (like ko) refuses: it makes builds unreproducible');
  }
  const args = ['build', ...options.flags, '-trimpath'];
  if (options.actionGraph) args.push(`-debug-actiongraph=${options.actionGraph}`);
  if (options.ldflags.length > 0) args.push(`-ldflags=${options.ldflags.join(' ')}`);
  args.push('-o', options.output, options.importPath);

  await mkdir(dirname(options.output), { recursive: true });
  const result = await runGo(args, {
    goBinary: options.goBinary,
    cwd: options.cwd,
    env,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.whileRunning ? { whileRunning: options.whileRunning } : {}),
  });
  if (result.exitCode !== 0) {
    // go writes its graph on failure too; nothing reads it then.
    if (options.actionGraph) await rm(options.actionGraph, { force: true }).catch(() => undefined);
    // The one line names the first diagnostic as go printed it; all of them travel parsed.
    const first = result.stderr.split('\n').find((line) => DIAGNOSTIC.test(line));
    const where = first ? `: ${first}` : firstMeaningfulLine(result.stderr);
    throw new TskoError('GO_BUILD', `go build failed for ${options.importPath} (${formatPlatform(options.platform)})${where}`, {
      detail: result.stderr.trim(),
      diagnostics: parseDiagnostics(result.stderr),
    });
  }
  return options.actionGraph ? readBuildWork(options.actionGraph) : undefined;
}

/**
 * Counts the graph's compile actions (mode `build`) and those that ran a command: an action whose
 * result came from the build cache runs none. The flag is go's own debugging aid (there since Go
 * 1.10) rather than a promise: a graph that is missing or shaped otherwise means "not known".
 */
export async function readBuildWork(path: string): Promise<GoBuildWork | undefined> {
  try {
    const graph = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (!Array.isArray(graph)) return undefined;
    let packages = 0;
    let compiled = 0;
    for (const action of graph as Array<{ Mode?: unknown; Cmd?: unknown }>) {
      if (action?.Mode !== 'build') continue;
      packages += 1;
      if (Array.isArray(action.Cmd) && action.Cmd.length > 0) compiled += 1;
    }
    return packages > 0 ? { compiled, packages } : undefined;
  } catch {
    return undefined;
  } finally {
    await rm(path, { force: true }).catch(() => undefined);
  }
}

/** Without a file:line issue (a broken go.mod, a missing module), the go command's own words. */
function firstMeaningfulLine(stderr: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
  const line = lines.find((l) => /go\.(mod|sum|work)/.test(l) && /:\d+:/.test(l)) ?? lines[0];
  return line ? `: ${line.replace(/^go: /, '')}` : '';
}

const DIAGNOSTIC = /^(\S+\.(?:go|mod|work|s|c)):(\d+)(?::(\d+))?: (.+)$/;

/**
 * The compiler's and the go command's `file:line[:col]: message` lines, each with the indented
 * lines under it as notes (`have (…)`/`want (…)`, a `go get …` fix) and go's `note: …` lines
 * after it (`note: module requires Go 1.27`). `# package` headers are dropped and end the notes of
 * the package before; a file is named without a leading `./`.
 */
export function parseDiagnostics(stderr: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  /** How many diagnostics there were when the current package's last one was added. */
  let lastOfPackage: number | undefined;
  for (const raw of stderr.split('\n')) {
    const match = DIAGNOSTIC.exec(raw);
    if (match) {
      const [, file = '', line = '0', column, message = ''] = match;
      out.push({ file: file.replace(/^\.\//, ''), line: Number(line), ...(column ? { column: Number(column) } : {}), message });
      lastOfPackage = out.length;
      continue;
    }
    // A package header starts another package's output: what follows belongs to no earlier one.
    if (raw.startsWith('# ')) {
      lastOfPackage = undefined;
      continue;
    }
    const last = lastOfPackage === out.length ? out.at(-1) : undefined;
    if (last && (/^\s+\S/.test(raw) || /^note: /.test(raw))) (last.notes ??= []).push(raw.trim());
  }
  return out;
}
