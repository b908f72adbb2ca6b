// ko, the tool tsko is measured against: the pinned version installed once into a cache dir with
// `go install` from the Go module proxy (air goes the same way), a registry of tsko's own implementation for it to push
// to (its own root, its own port), and one timed `ko build` of the example.
import { access, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Platform } from '../src/image/types.js';
import { pushBuiltinBase } from './base-image.js';
import { freePort, tail, waitForHttp, type Children } from './children.js';

export const KO_MODULE = 'github.com/google/ko';

export type KoBinary = { available: true; path: string; version: string } | { available: false; reason: string };

/** ko at `<cache>/tsko-dev/ko/<version>/ko`, built there from the module proxy when missing. */
export async function ensureKo(children: Children, version: string, env: NodeJS.ProcessEnv): Promise<KoBinary> {
  return ensureGoTool(children, { module: KO_MODULE, name: 'ko', version, versionArgs: ['version'] }, env);
}

export interface GoTool {
  /** The module to `go install` (its main package at the root). */
  module: string;
  /** The binary's name, and the cache dir's. */
  name: string;
  version: string;
  /** Arguments that make it print its version and exit 0. */
  versionArgs: string[];
}

/**
 * A Go tool at `${XDG_CACHE_HOME:-~/.cache}/tsko-dev/<name>/<version>/<name>`, built there once with
 * `go install module@version` from the Go module proxy when missing.
 */
export async function ensureGoTool(children: Children, tool: GoTool, env: NodeJS.ProcessEnv): Promise<KoBinary> {
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const dir = join(cacheHome, 'tsko-dev', tool.name, tool.version);
  const path = join(dir, tool.name);
  const spec = `${tool.module}@${tool.version}`;
  if (!(await exists(path))) {
    await mkdir(dir, { recursive: true });
    process.stderr.write(`bench: installing ${tool.name} ${tool.version} into ${dir} (go install, once)…\n`);
    const install = await children.spawn('go', ['install', spec], {
      env: { ...stringEnv(env), GOBIN: dir, CGO_ENABLED: '0' },
      extendEnv: false,
      timeout: 10 * 60_000,
      stdin: 'ignore',
    });
    if (install.exitCode !== 0 || !(await exists(path))) {
      return { available: false, reason: `go install ${spec} failed: ${tail(String(install.stderr ?? install.message), 5)}` };
    }
  }
  const probe = await children.spawn(path, tool.versionArgs, { timeout: 30_000, stdin: 'ignore' });
  if (probe.exitCode !== 0) return { available: false, reason: `${path} ${tool.versionArgs.join(' ')} failed: ${tail(String(probe.stderr), 5)}` };
  const printed = `${String(probe.stdout)}\n${String(probe.stderr)}`;
  return { available: true, path, version: /v?\d+\.\d+\.\d+[\w.+-]*/.exec(printed)?.[0] ?? tool.version };
}

export interface KoRegistry {
  address: string;
  /** A digest reference to the builtin base, pushed there. */
  base: string;
}

/** `tsko registry serve` on a free loopback port with its own root, the base pushed into it. */
export async function startKoRegistry(children: Children, tskoBin: string, root: string, platform: Platform): Promise<KoRegistry> {
  const address = `127.0.0.1:${await freePort()}`;
  // Tracked by `children` (stopped with the bench); it runs until then, so it is not awaited.
  void children.spawn(process.execPath, [tskoBin, 'registry', 'serve', '--addr', address, '--root', root], { stdin: 'ignore', buffer: false, stdout: 'ignore', stderr: 'ignore' });
  await waitForHttp(`http://${address}/v2/`, 30_000);
  const base = await pushBuiltinBase(address, 'base', platform);
  return { address, base };
}

export interface KoRun {
  ms: number;
  reference: string;
}

/** One `ko build` of the package in `cwd`, timed from spawn to exit. */
export async function koBuild(children: Children, ko: string, cwd: string, env: Record<string, string>, timeoutMs: number): Promise<KoRun> {
  const started = performance.now();
  // SBOMs off, as Skaffold's ko builder runs it: only the image is compared.
  const result = await children.spawn(ko, ['build', '--sbom=none', '.'], { cwd, env, extendEnv: false, timeout: timeoutMs, stdin: 'ignore' });
  const ms = performance.now() - started;
  if (result.exitCode !== 0) throw new Error(`ko build failed (exit ${result.exitCode ?? result.signal}):\n${tail(String(result.stderr))}`);
  return { ms, reference: String(result.stdout).trim() };
}

export function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
