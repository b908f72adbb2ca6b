// Checks a pushed image with real tools, never with tsko's own code: skopeo reads it from the
// registry, umoci unpacks it (the only step that verifies config diff_ids), and the entrypoint is
// run from the unpacked rootfs with chroot and asked for `/` over HTTP.
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, withTempDir, type AfterHook } from './tmp.js';

const toolTimeoutMs = 120_000;
const systemPolicy = '/etc/containers/policy.json';
const acceptAnythingPolicy = '{"default":[{"type":"insecureAcceptAnything"}]}\n';

export interface InspectOptions {
  raw?: boolean;
  config?: boolean;
  insecure?: boolean;
  authfile?: string;
  /** `user:password`; never echoed in errors. */
  creds?: string;
}

export interface CopyOptions {
  /** Copy every platform of an index (skopeo `--all`), not only the host's. */
  all?: boolean;
  /**
   * Have skopeo decompress every layer (verifying its digest) and write it again as gzip: Debian's
   * umoci (0.4.7) refuses zstd layers ("blob is not correct mediatype"), and reads gzip ones.
   */
  recompressGzip?: boolean;
  insecure?: boolean;
  authfile?: string;
  creds?: string;
}

/** The parts of umoci's OCI runtime config.json the checks use. */
export interface BundleConfig {
  process: {
    args: string[];
    env: string[];
    cwd: string;
    user: { uid: number; gid: number };
  };
  root: { path: string };
}

export interface RunningEntrypoint {
  pid: number;
  /** Everything the process wrote to stdout and stderr so far (tail, bounded). */
  logs(): string;
  stop(): Promise<void>;
}

export interface CheckImageOptions {
  insecure?: boolean;
  /** A RegExp must match the body; a string must equal it exactly. */
  expectBody?: RegExp | string;
  env?: Record<string, string>;
  authfile?: string;
  creds?: string;
  /** Scopes removal of the returned rootfs to this test; default: process exit. */
  t?: AfterHook;
  /** Pull through skopeo's gzip recompression (for zstd layers, which Debian's umoci cannot unpack). */
  recompressGzip?: boolean;
}

export interface CheckedImage {
  manifest: unknown;
  config: unknown;
  body: string;
  /** The unpacked rootfs; kept until the test (`options.t`) ends, else until the process exits. */
  rootfs: string;
}

// ---------------------------------------------------------------------------------------------
// Running tools

function redactArgs(args: readonly string[]): string[] {
  return args.map((arg, i) => (/creds$/.test(args[i - 1] ?? '') ? '<redacted>' : arg.replace(/(creds=).*/, '$1<redacted>')));
}

/** Runs a tool to completion within a timeout; on failure throws with the command line and stderr. */
async function runTool(file: string, args: string[], timeoutMs = toolTimeoutMs): Promise<string> {
  const result = await execa(file, args, { timeout: timeoutMs, reject: false, stdin: 'ignore' });
  if (result.exitCode === 0 && !result.timedOut) return result.stdout;
  const why = result.timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${result.exitCode ?? result.signal ?? 'no code'}`;
  throw new Error(`${file} ${redactArgs(args).join(' ')} ${why}\n${result.stderr || result.stdout}`.trimEnd());
}

/** Runs skopeo with a signature policy: the system's if present, else accept-anything in a temp file. */
async function runSkopeo(args: string[]): Promise<string> {
  if (existsSync(systemPolicy)) return runTool('skopeo', args);
  return withTempDir('skopeo-policy', async (dir) => {
    const policy = join(dir, 'policy.json');
    await writeFile(policy, acceptAnythingPolicy);
    return runTool('skopeo', ['--policy', policy, ...args]);
  });
}

function dockerRef(ref: string): string {
  return ref.startsWith('docker://') ? ref : `docker://${ref}`;
}

function layoutRef(layoutDir: string, tag: string): string {
  return `oci:${layoutDir}:${tag}`;
}

function credentialArgs(prefix: '' | 'src-' | 'dest-', options: { authfile?: string; creds?: string }): string[] {
  const args: string[] = [];
  if (options.authfile !== undefined) args.push(`--${prefix}authfile`, options.authfile);
  if (options.creds !== undefined) args.push(`--${prefix}creds`, options.creds);
  return args;
}

// ---------------------------------------------------------------------------------------------
// skopeo

/** `skopeo inspect` of a registry reference, JSON-parsed. `raw` + `config` gives the exact config blob. */
export async function skopeoInspect(ref: string, options: InspectOptions = {}): Promise<unknown> {
  const args = ['inspect'];
  if (options.raw) args.push('--raw');
  if (options.config) args.push('--config');
  if (options.insecure) args.push('--tls-verify=false');
  args.push(...credentialArgs('', options), dockerRef(ref));
  return JSON.parse(await runSkopeo(args)) as unknown;
}

/** Copies a registry image into an OCI layout under `tag` (only the host's platform unless `all`). */
export async function skopeoCopyToLayout(ref: string, layoutDir: string, tag: string, options: CopyOptions = {}): Promise<void> {
  const args = ['copy', '--quiet'];
  if (options.all) args.push('--all');
  if (options.insecure) args.push('--src-tls-verify=false');
  if (options.recompressGzip) args.push('--dest-compress', '--dest-compress-format', 'gzip');
  args.push(...credentialArgs('src-', options), dockerRef(ref), layoutRef(layoutDir, tag));
  await runSkopeo(args);
}

/** Pushes the image tagged `tag` in an OCI layout to a registry reference. */
export async function skopeoCopyFromLayout(layoutDir: string, tag: string, ref: string, options: CopyOptions = {}): Promise<void> {
  const args = ['copy', '--quiet'];
  if (options.all) args.push('--all');
  if (options.insecure) args.push('--dest-tls-verify=false');
  args.push(...credentialArgs('dest-', options), layoutRef(layoutDir, tag), dockerRef(ref));
  await runSkopeo(args);
}

// ---------------------------------------------------------------------------------------------
// umoci

/** Unpacks `layoutDir:tag` into an OCI runtime bundle; umoci checks every layer against its diff_id. */
export async function umociUnpack(layoutDir: string, tag: string, bundleDir: string): Promise<void> {
  const rootless = process.getuid?.() !== 0 ? ['--rootless'] : [];
  await runTool('umoci', ['unpack', ...rootless, '--image', `${layoutDir}:${tag}`, bundleDir]);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** Reads the runtime config.json umoci wrote: the image's entrypoint, env, working dir and user. */
export async function readBundleConfig(bundleDir: string): Promise<BundleConfig> {
  const parsed = JSON.parse(await readFile(join(bundleDir, 'config.json'), 'utf8')) as {
    process?: { args?: unknown; env?: unknown; cwd?: unknown; user?: { uid?: unknown; gid?: unknown } };
    root?: { path?: unknown };
  };
  const proc = parsed.process;
  if (proc === undefined || !isStringArray(proc.args) || proc.args.length === 0) {
    throw new Error(`${bundleDir}/config.json has no process.args (image has no Entrypoint/Cmd?)`);
  }
  return {
    process: {
      args: proc.args,
      env: isStringArray(proc.env) ? proc.env : [],
      cwd: typeof proc.cwd === 'string' && proc.cwd !== '' ? proc.cwd : '/',
      user: { uid: Number(proc.user?.uid ?? 0), gid: Number(proc.user?.gid ?? 0) },
    },
    root: { path: typeof parsed.root?.path === 'string' ? parsed.root.path : 'rootfs' },
  };
}

// ---------------------------------------------------------------------------------------------
// Running the entrypoint

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

function envList(base: string[], overrides: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of base) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { ...env, ...overrides };
}

/** A host tool's absolute path: the child's env is the image's, whose PATH may lack /usr/sbin. */
function hostTool(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs.filter((d) => d.startsWith('/'))) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this dir
    }
  }
  throw new Error(`${name} not found on PATH`);
}

/**
 * The command that enters the rootfs as the image's user. chroot always chdirs to `/`, so a
 * non-root working dir needs util-linux `unshare --root --wd` (no namespaces are created).
 */
function entryCommand(rootfs: string, config: BundleConfig): [string, string[]] {
  const { uid, gid } = config.process.user;
  if (config.process.cwd === '/') {
    return [hostTool('chroot'), [`--userspec=${uid}:${gid}`, '--groups=', rootfs, ...config.process.args]];
  }
  return [hostTool('unshare'), [`--root=${rootfs}`, `--wd=${config.process.cwd}`, `--setgid=${gid}`, `--setuid=${uid}`, ...config.process.args]];
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess, graceMs = 2_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  if (!(await waitForExit(child, 5_000))) throw new Error(`process ${child.pid} survived SIGKILL`);
}

/** GETs a URL with a bounded time; resolves to the body, rejects on a network error or timeout. */
export async function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, body: await response.text() };
}

async function waitUntilServing(child: ChildProcess, url: string, timeoutMs: number, logs: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`entrypoint exited (${child.exitCode ?? child.signalCode}) before serving ${url}\n${logs()}`);
    }
    try {
      await httpGet(url, Math.max(100, Math.min(2_000, deadline - Date.now())));
      return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`entrypoint did not serve ${url} within ${timeoutMs} ms (${String(lastError)})\n${logs()}`);
}

/**
 * Starts the image's entrypoint from an unpacked bundle in the background, with the image's env plus
 * `env` and PORT, and resolves once `http://127.0.0.1:<port>/` answers.
 */
export async function runEntrypoint(
  bundleDir: string,
  options: { port: number; env?: Record<string, string>; timeoutMs?: number },
): Promise<RunningEntrypoint> {
  const config = await readBundleConfig(bundleDir);
  const rootfs = join(bundleDir, config.root.path);
  const [file, args] = entryCommand(rootfs, config);
  const env = envList(config.process.env, { ...options.env, PORT: String(options.port) });
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-64 * 1024);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (spawned !== undefined || child.pid === undefined) throw new Error(`cannot start ${file}: ${String(spawned)}`);
  const logs = (): string => output;
  try {
    await waitUntilServing(child, `http://127.0.0.1:${options.port}/`, options.timeoutMs ?? 15_000, logs);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { pid: child.pid, logs, stop: () => stopChild(child) };
}

// ---------------------------------------------------------------------------------------------
// The whole chain

function assertBody(body: string, expected: RegExp | string | undefined, logs: string): void {
  if (expected === undefined) return;
  const ok = typeof expected === 'string' ? body === expected : body.search(expected) !== -1;
  if (!ok) {
    throw new Error(`body ${JSON.stringify(body)} does not match ${typeof expected === 'string' ? JSON.stringify(expected) : String(expected)}\nlogs:\n${logs}`);
  }
}

/**
 * Inspects, pulls, unpacks and runs a registry image, and returns what `/` served. The layout is
 * removed at once; the unpacked bundle lives until the test (`options.t`) ends or the process exits.
 */
export async function checkImage(ref: string, options: CheckImageOptions = {}): Promise<CheckedImage> {
  const creds = { insecure: options.insecure, authfile: options.authfile, creds: options.creds };
  const manifest = await skopeoInspect(ref, { ...creds, raw: true });
  const config = await skopeoInspect(ref, { ...creds, raw: true, config: true });
  const bundleParent = await makeTempDir('check-bundle', options.t);
  const bundle = join(bundleParent, 'bundle');
  await withTempDir('check-layout', async (layoutParent) => {
    const layout = join(layoutParent, 'layout');
    await skopeoCopyToLayout(ref, layout, 'check', { ...creds, recompressGzip: options.recompressGzip });
    await umociUnpack(layout, 'check', bundle);
  });
  const port = await freePort();
  const running = await runEntrypoint(bundle, { port, env: options.env ?? {} });
  try {
    const { status, body } = await httpGet(`http://127.0.0.1:${port}/`);
    if (status !== 200) throw new Error(`GET / answered ${status}: ${body}\nlogs:\n${running.logs()}`);
    assertBody(body, options.expectBody, running.logs());
    const bundleConfig = await readBundleConfig(bundle);
    return { manifest, config, body, rootfs: join(bundle, bundleConfig.root.path) };
  } finally {
    await running.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// ELF

const elfMachines: Record<number, string> = {
  0x03: 'x86',
  0x08: 'mips',
  0x14: 'ppc',
  0x15: 'ppc64',
  0x16: 's390x',
  0x28: 'arm',
  0x3e: 'x86-64',
  0xb7: 'aarch64',
  0xf3: 'riscv',
  0x102: 'loongarch',
};

/** The CPU an ELF binary is built for, from the header's e_machine (`x86-64`, `aarch64`, …). */
export async function elfMachine(file: string): Promise<'x86-64' | 'aarch64' | string> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < 20 || header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
    const machine = header[5] === 2 ? header.readUInt16BE(18) : header.readUInt16LE(18);
    return elfMachines[machine] ?? `unknown(0x${machine.toString(16)})`;
  } finally {
    await handle.close();
  }
}
