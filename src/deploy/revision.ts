// One revision of a service running on this machine the way Cloud Run runs a container: the
// image's entrypoint started straight from the unpacked rootfs (no chroot, so no root needed),
// with the image's env (paths into the image mapped into the rootfs) plus PORT and K_*; its own
// process group, so a stop reaches its children; its lines streamed as revision.log events.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, lstat, mkdir, readFile, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as delay } from 'node:timers/promises';
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { ContainerConfig } from '../image/types.js';

export interface RevisionOptions {
  /** `hello-00003` */
  name: string;
  service: string;
  /** The unpacked image. */
  rootfs: string;
  config: ContainerConfig | undefined;
  port: number;
  /** Extra variables after the image's (the reserved PORT and K_* still win). */
  env?: Record<string, string>;
  events: EventBus;
  /**
   * A command the entrypoint is started through, when there is one (see findExitGuard): it makes
   * the revision die with tsko even when tsko is killed with SIGKILL and cannot stop it.
   */
  guard?: readonly string[];
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  error?: Error;
}

export interface Command {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
}

/** Lines kept for the error shown when a revision fails. */
const TAIL_LINES = 40;
/** Longer lines are cut, so a binary blob on stdout cannot grow memory without bound. */
const MAX_LINE = 16 * 1024;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class Revision {
  readonly name: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  private readonly child: ChildProcess;
  private readonly tail: string[] = [];
  private readonly streamsClosed: Promise<void>;
  private exit: ExitInfo | undefined;
  private stopping: Promise<void> | undefined;
  /** tsko asked it to stop (stop() or killNow()): its exit is then not a crash. */
  private stopAsked = false;
  /** When a stop in progress sends SIGKILL; `hurry` wakes it when that moves earlier. */
  private killAt = Number.POSITIVE_INFINITY;
  private hurry = new AbortController();

  private constructor(options: RevisionOptions, command: Command) {
    this.name = options.name;
    this.port = options.port;
    // detached: a new session and process group, whose id is the pid; killing -pid reaches the
    // revision's children too, and Ctrl-C in tsko's terminal does not hit it before tsko decides.
    const [file, ...args] = [...(options.guard ?? []), command.file, ...command.args] as [string, ...string[]];
    this.child = spawn(file, args, { cwd: command.cwd, env: command.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.child.pid;
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve((this.exit = { code, signal })));
      // A listener for good: an unhandled 'error' would crash tsko.
      this.child.on('error', (error) => {
        if (this.child.pid === undefined) resolve((this.exit = { code: null, signal: null, error }));
      });
    });
    const emit = (stream: 'stdout' | 'stderr') => (line: string) => {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      options.events.emit({ type: 'revision.log', revision: this.name, stream, line });
    };
    this.streamsClosed = Promise.all([
      streamLines(this.child.stdout, emit('stdout')),
      streamLines(this.child.stderr, emit('stderr')),
    ]).then(() => undefined);
  }

  /** Starts the image's entrypoint; throws a DEPLOY error when the image has nothing to start. */
  static async start(options: RevisionOptions): Promise<Revision> {
    const command = await commandFor(options);
    return new Revision(options, command);
  }

  /** The last lines the revision printed, oldest first. */
  recentLogs(): string[] {
    return this.tail.slice();
  }

  get exitInfo(): ExitInfo | undefined {
    return this.exit;
  }

  /** It has exited, and not because tsko stopped it: it crashed, or returned from main. */
  get exitedOnItsOwn(): boolean {
    return this.exit !== undefined && !this.stopAsked;
  }

  /** Its last `count` log lines once its pipes are drained (the last lines can trail the exit). */
  async lastLines(count: number): Promise<string[]> {
    await Promise.race([this.streamsClosed, delay(200)]);
    return this.tail.slice(-count);
  }

  /**
   * Resolves with the ms it took once the revision answers HTTP on its port (any status). Throws
   * a DEPLOY error when it exits first or stays silent past `timeoutMs`, ABORTED on `signal`.
   */
  async waitReady(options: { timeoutMs: number; signal?: AbortSignal }): Promise<number> {
    const started = performance.now();
    const deadline = started + options.timeoutMs;
    const { signal } = options;
    // Refused connections answer in microseconds, so polling often costs little and a revision
    // that listens within a few ms is switched to within a few ms.
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal, `deploy of ${this.name} aborted`);
      if (this.exit) throw await this.exitedError();
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new TskoError('DEPLOY', `revision ${this.name} did not answer on PORT ${this.port} within ${formatSeconds(options.timeoutMs)}`, {
          hint: 'a service must answer HTTP on the port in $PORT, on 127.0.0.1 or all interfaces',
          detail: this.logDetail(),
        });
      }
      if (await answersHttp(this.port, Math.min(remaining, 1000), signal)) return performance.now() - started;
      const interval = attempt < 100 ? 2 : 25;
      await Promise.race([sleep(Math.min(interval, remaining), signal), this.exited]);
    }
  }

  /**
   * SIGTERM to the group, up to `graceMs` for the revision to exit, then SIGKILL to the group
   * (whatever children outlived it). Resolves once the process is gone. Calling it again returns
   * the same stop, made sooner if the new grace ends first (close() hurrying a retiring revision).
   */
  stop(graceMs: number): Promise<void> {
    this.stopAsked = true;
    const killAt = performance.now() + graceMs;
    if (killAt < this.killAt) {
      this.killAt = killAt;
      this.hurry.abort();
      this.hurry = new AbortController();
    }
    this.stopping ??= (async () => {
      if (this.pid === undefined) return;
      if (!this.exit && graceMs > 0) {
        this.signalGroup('SIGTERM');
        while (!this.exit && performance.now() < this.killAt) {
          const wait = this.killAt - performance.now();
          await Promise.race([this.exited, sleep(wait, this.hurry.signal)]);
        }
      }
      this.signalGroup('SIGKILL');
      // SIGKILL cannot be ignored; the bound only guards against a process stuck in the kernel.
      await Promise.race([this.exited, sleep(2000)]);
      await Promise.race([this.streamsClosed, sleep(100)]);
    })();
    return this.stopping;
  }

  /** SIGKILL to the group, synchronously: for process exit, when nothing async runs any more. */
  killNow(): void {
    this.stopAsked = true;
    if (this.pid !== undefined) this.signalGroup('SIGKILL');
  }

  private signalGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-(this.pid as number), signal);
    } catch {
      // ESRCH: the whole group is gone already.
    }
  }

  private async exitedError(): Promise<TskoError> {
    // The last lines can still be in the pipes when the exit is reported.
    await Promise.race([this.streamsClosed, delay(200)]);
    const exit = this.exit as ExitInfo;
    if (exit.error) {
      return new TskoError('DEPLOY', `revision ${this.name} could not start: ${exit.error.message}`, { cause: exit.error, detail: this.logDetail() });
    }
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    return new TskoError('DEPLOY', `revision ${this.name} ${how} before listening on PORT ${this.port}`, {
      hint: 'a service must keep running and answer HTTP on the port in $PORT',
      detail: this.logDetail(),
    });
  }

  private logDetail(): string | undefined {
    return this.tail.length > 0 ? this.tail.join('\n') : undefined;
  }
}

/** Resolves after `ms`, or early on `signal`; never holds the process open by itself. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(Math.max(0, ms), undefined, { ref: false, ...(signal ? { signal } : {}) }).catch(() => undefined);
}


function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Whether something answers an HTTP request on 127.0.0.1:port, with any status. */
export function answersHttp(port: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/',
      method: 'GET',
      agent: false,
      timeout: timeoutMs,
      headers: { 'user-agent': 'tsko-readiness' },
      ...(signal ? { signal } : {}),
    });
    req.once('response', (res) => {
      res.resume();
      resolve(true);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}

/** Calls `onLine` for each line of `stream` (utf-8, `\n` or `\r\n`), the last one even unterminated. */
function streamLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    const decoder = new StringDecoder('utf8');
    let pending = '';
    const push = (text: string) => {
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, newline).replace(/\r$/, ''));
        pending = pending.slice(newline + 1);
      }
      if (pending.length > MAX_LINE) {
        onLine(pending.slice(0, MAX_LINE));
        pending = '';
      }
    };
    stream.on('data', (chunk: Buffer) => push(decoder.write(chunk)));
    stream.on('error', () => resolve());
    stream.once('close', () => {
      push(decoder.end());
      if (pending !== '') onLine(pending);
      resolve();
    });
  });
}

/**
 * What to run for an image, mapped onto the host: argv[0] looked up in the rootfs (through the
 * image's PATH when it has no slash), the working dir inside the rootfs, and the env.
 */
export async function commandFor(options: Pick<RevisionOptions, 'rootfs' | 'config' | 'port' | 'env' | 'name' | 'service'>): Promise<Command> {
  const { rootfs } = options;
  const config = options.config ?? {};
  const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  const program = argv[0];
  if (program === undefined || program === '') {
    throw new TskoError('DEPLOY', 'the image has no entrypoint or command to run');
  }
  const imageEnv = parseEnv(config.Env ?? []);
  const workingDir = config.WorkingDir && config.WorkingDir.startsWith('/') ? config.WorkingDir : '/';
  const cwd = inRootfs(rootfs, workingDir);
  // As container runtimes do, a WorkingDir the image lacks is created.
  await mkdir(cwd, { recursive: true });
  const file = await findProgram(rootfs, program, imageEnv.get('PATH') ?? DEFAULT_PATH, workingDir);

  const env: Record<string, string> = {};
  for (const [key, value] of imageEnv) env[key] = await mapValue(rootfs, value);
  if (env.HOME === undefined) env.HOME = await homeFor(rootfs, config.User);
  Object.assign(env, options.env ?? {});
  // Reserved, as on Cloud Run: neither the image nor the user's env can set these.
  env.PORT = String(options.port);
  env.K_SERVICE = options.service;
  env.K_REVISION = options.name;
  env.K_CONFIGURATION = options.service;
  return { file, args: argv.slice(1), cwd, env };
}

function parseEnv(entries: readonly string[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

function inRootfs(rootfs: string, path: string): string {
  return path === '/' ? rootfs : join(rootfs, path);
}

/**
 * An env value as the host must see it: an absolute path that exists in the image points into
 * the rootfs; a list of absolute paths (PATH) has each such entry mapped. Entries the image lacks
 * stay as they are, so a tool the image does not carry falls back to the host's.
 */
async function mapValue(rootfs: string, value: string): Promise<string> {
  if (!value.startsWith('/')) return value;
  const parts = value.split(':');
  if (!parts.every((part) => part === '' || part.startsWith('/'))) return value;
  const mapped = await Promise.all(parts.map(async (part) => (part !== '' && (await exists(inRootfs(rootfs, part))) ? inRootfs(rootfs, part) : part)));
  return mapped.join(':');
}

async function findProgram(rootfs: string, program: string, path: string, workingDir: string): Promise<string> {
  let candidates: string[];
  if (program.startsWith('/')) candidates = [inRootfs(rootfs, program)];
  else if (program.includes('/')) candidates = [join(inRootfs(rootfs, workingDir), program)];
  else candidates = path.split(':').filter((dir) => dir.startsWith('/')).map((dir) => join(inRootfs(rootfs, dir), program));
  for (const candidate of candidates) {
    const info = await stat(candidate).catch(() => undefined);
    if (info?.isFile() && (await access(candidate, fsConstants.X_OK).then(() => true, () => false))) return candidate;
  }
  throw new TskoError('DEPLOY', `the image's entrypoint ${program} is not an executable file in the image`, {
    hint: program.includes('/') ? undefined : `looked in the image's PATH: ${path}`,
  });
}

/** HOME as a runtime sets it: the user's home from the image's /etc/passwd, else `/`. */
async function homeFor(rootfs: string, user: string | undefined): Promise<string> {
  const wanted = (user ?? '').split(':')[0] || '0';
  const passwd = await readFile(join(rootfs, 'etc/passwd'), 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 6 && (fields[0] === wanted || fields[2] === wanted)) {
      const home = fields[5] as string;
      if (home.startsWith('/') && (await exists(inRootfs(rootfs, home)))) return inRootfs(rootfs, home);
    }
  }
  return rootfs;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
