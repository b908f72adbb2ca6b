// The local target, tsko's embedded default: each deploy becomes a revision running on this
// machine the way Cloud Run would run it — image unpacked under workDir, entrypoint started with
// the image's env plus PORT and K_*, switched to on the stable front port once it answers HTTP,
// the previous revision then drained and stopped (SIGTERM, grace, SIGKILL). A revision that never
// gets ready is never switched to: the last good one keeps serving.
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { abortable, abortError, linkedSignal, throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import { redact } from '../redact.js';
import { formatPlatform, hostPlatform, samePlatform } from '../go/platform.js';
import type { EventBus } from '../events.js';
import { findExitGuard } from './exit-guard.js';
import { FrontProxy, type CrashReport } from './front-proxy.js';
import { Revision } from './revision.js';
import type { DeployRequest, DeployResult, EarlyDeployRequest, Rollout, Target } from './target.js';
import { removeTree, type CloneMode } from './tree.js';
import { pruneChains, unpackRunnable, type UnpackResult } from './unpack.js';
import { runnableOf } from '../image/assemble.js';

export interface LocalTargetOptions {
  /** The stable front port (default 8080; 0 picks a free one). */
  port?: number;
  host?: '127.0.0.1';
  /** Revisions are unpacked under here; the layer cache lives here too. */
  workDir: string;
  /** How long a new revision has to answer HTTP on its PORT (default 10000). */
  readyTimeoutMs?: number;
  /** How long a retiring revision has to finish requests, and then to exit on SIGTERM (default 2000). */
  gracePeriodMs?: number;
  /** Extra env for every revision (PORT and K_* still win). */
  env?: Record<string, string>;
  events: EventBus;
  /**
   * How a revision's rootfs gets the cached lower layers. Hard links (the default) cost one
   * syscall per file whatever its size; they share inodes with the cache, which only matters for
   * a revision that writes into an image file in place — which ko's images (binary and kodata
   * 0555, a nonroot user) do not let it do on Cloud Run either. Copies never share.
   */
  rootfsClone?: CloneMode;
}

export interface LocalTarget extends Target {
  readonly kind: 'local';
  /** `http://127.0.0.1:<front port>` */
  readonly url: string;
  readonly port: number;
  /** Where revisions are unpacked, one directory each: `<workDir>/revisions/<front port>`. */
  readonly revisionsDir: string;
  /** The revision now serving, if any. */
  current(): string | undefined;
}

interface Running {
  revision: Revision;
  service: string;
  dir: string;
  /** It exited on its own while serving: nothing serves until the next deploy. */
  crashed?: boolean;
}

/** A revision started by deploy() and not yet ready. */
interface Starting {
  name: string;
  dir: string;
  port: number;
  revision: Revision;
  unpacked: UnpackResult;
}

// On close, revisions get at most this long to exit before SIGKILL, so that tsko itself stops
// within its 2 s shutdown budget whatever gracePeriodMs says.
const CLOSE_GRACE_MS = 1500;
/** Log lines a revision.exit event carries (the front port's crash page shows them). */
const EXIT_LINES = 20;

/** Binds the front port at once (a busy port fails here, not on the first save). */
export async function createLocalTarget(options: LocalTargetOptions): Promise<LocalTarget> {
  const [proxy, guard] = await Promise.all([FrontProxy.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 }), findExitGuard()]);
  // Per front port: holding the port means no other live target uses this directory, so what is
  // in it was left by an earlier run (the chain cache beside it stays good).
  const revisionsDir = join(options.workDir, 'revisions', String(proxy.port));
  try {
    killStrays(revisionsDir);
    await removeTree(revisionsDir);
    await mkdir(revisionsDir, { recursive: true });
  } catch (err) {
    await proxy.close();
    throw err;
  }
  return new LocalTargetImpl(options, proxy, revisionsDir, guard);
}

/**
 * SIGKILLs processes still running from `dir`: revisions of an earlier tsko that was killed
 * before it could stop them. Linux only (/proc); elsewhere there is nothing to scan.
 */
function killStrays(dir: string): void {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return;
  }
  for (const pid of pids) {
    let argv0: string;
    try {
      argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    if (!argv0.startsWith(`${dir}/`)) continue;
    for (const target of [-Number(pid), Number(pid)]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Not a group leader, or gone already.
      }
    }
  }
}

class LocalTargetImpl implements LocalTarget {
  readonly kind = 'local' as const;
  private readonly options: LocalTargetOptions;
  private readonly proxy: FrontProxy;
  private readonly readyTimeoutMs: number;
  private readonly graceMs: number;
  readonly revisionsDir: string;
  private readonly chainsDir: string;
  /** What each revision is started through so that it dies with tsko (see exit-guard.ts). */
  private readonly guard: readonly string[] | undefined;
  /** Each deploy waits for the one before it. */
  private queue: Promise<unknown> = Promise.resolve();
  private counter = 0;
  private active: Running | undefined;
  /** Every revision started and not yet stopped, the active one included. */
  private readonly live = new Set<Revision>();
  /** Revisions being drained and stopped in the background. */
  private readonly retiring = new Map<Revision, Promise<void>>();
  /** The newest iteration deployed per service: an older one never replaces it. */
  private readonly newest = new Map<string, number>();
  /** Cached layer chains the current and the previous revision were built from. */
  private recentChains: string[][] = [];
  private readonly closer = new AbortController();
  private closing: Promise<void> | undefined;
  private readonly onProcessExit = () => {
    // tsko is exiting without close(): revisions live in their own process groups and would
    // outlive it. Only synchronous calls work here.
    for (const revision of this.live) revision.killNow();
  };

  constructor(options: LocalTargetOptions, proxy: FrontProxy, revisionsDir: string, guard: readonly string[] | undefined) {
    this.options = options;
    this.guard = guard;
    this.proxy = proxy;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
    this.graceMs = options.gracePeriodMs ?? 2000;
    this.revisionsDir = revisionsDir;
    this.chainsDir = join(options.workDir, 'layers');
    process.on('exit', this.onProcessExit);
  }

  get url(): string {
    return this.proxy.url;
  }

  get port(): number {
    return this.proxy.port;
  }

  current(): string | undefined {
    return this.active?.revision.name;
  }

  deploy(request: DeployRequest): Promise<Rollout> {
    const { image, reference, ...rest } = request;
    return this.deployBeforePush({ ...rest, runnable: runnableOf(image), pushed: Promise.resolve(reference) });
  }

  /**
   * Deploys run one at a time: each waits for the one before it to have settled. The turn is held
   * from the unpack until the push's outcome has been applied (settled()). The revision starts
   * from the image's own files (the binary linked, not extracted) while its layer is packed and
   * pushed, and is switched to as soon as it answers; the previous one is retired once the push
   * has completed, or switched back to when it failed.
   */
  deployBeforePush(request: EarlyDeployRequest): Promise<Rollout> {
    if (this.closing) return Promise.reject(new TskoError('ABORTED', 'the local target is closed'));
    const turn = this.queue;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // Only settlement matters: a chain of results would keep every earlier one alive.
    this.queue = Promise.allSettled([turn, released]).then(() => undefined);
    return (async () => {
      const linked = linkedSignal([request.signal, this.closer.signal]);
      const done = () => {
        linked.dispose();
        release();
      };
      try {
        // A deploy aborted while it waits for its turn gives up at once instead of queueing on.
        await abortable(turn, request.signal).catch((err: unknown) => {
          if (request.signal.aborted) throw abortError(request.signal, 'deploy aborted before it started');
          throw err;
        });
        const starting = await this.start(request, linked.signal);
        let settled: Promise<void> = Promise.resolve();
        return {
          ready: async () => {
            try {
              const switched = await this.finish(starting, request, linked.signal);
              settled = switched.settled.finally(done);
              return switched.result;
            } catch (err) {
              done();
              throw err;
            }
          },
          settled: () => settled,
        };
      } catch (err) {
        done();
        throw err;
      }
    })();
  }

  /** Unpacks the image into a new revision dir and starts its entrypoint on a free port. */
  private async start(request: EarlyDeployRequest, signal: AbortSignal): Promise<Starting> {
    const { service, iteration, events, runnable: image } = request;
    throwIfAborted(signal, `deploy of ${service} iteration ${iteration} aborted`);
    const newest = this.newest.get(service);
    if (newest !== undefined && iteration < newest) {
      throw new TskoError('ABORTED', `not deploying iteration ${iteration} of ${service}: iteration ${newest} is newer and already serving`);
    }
    checkPlatform(image.config.os, image.config.architecture);

    const name = `${service}-${String(++this.counter).padStart(5, '0')}`;
    const dir = join(this.revisionsDir, name);
    let revision: Revision | undefined;
    try {
      const [unpacked, port] = await Promise.all([
        unpackRunnable(image, dir, { cacheDir: this.chainsDir, signal, clone: this.options.rootfsClone ?? 'link' }),
        freePort(),
      ]);
      throwIfAborted(signal, `deploy of ${name} aborted`);
      revision = await Revision.start({
        name,
        service,
        rootfs: dir,
        config: image.config.config,
        port,
        env: this.options.env ?? {},
        events,
        ...(this.guard ? { guard: this.guard } : {}),
      });
      this.live.add(revision);
      return { name, dir, port, revision, unpacked };
    } catch (err) {
      throw await this.abandon({ name, dir, revision }, err, signal);
    }
  }

  /**
   * Waits for the started revision to answer and switches the front port to it. The previous
   * revision is kept until the push has settled: `settled` then retires it, or, when the push
   * failed, switches back to it and stops the new one.
   */
  private async finish(starting: Starting, request: EarlyDeployRequest, signal: AbortSignal): Promise<{ result: DeployResult; settled: Promise<void> }> {
    const { name, dir, port, revision, unpacked } = starting;
    const { service, iteration, events } = request;
    let readyMs: number;
    try {
      // A push that fails while the revision starts means it is never switched to.
      const pushFailed = request.pushed.then(
        () => new Promise<never>(() => undefined),
        (err: unknown) => {
          throw new TskoError('DEPLOY', `${name} is not switched to: its image was not pushed (${(err as Error).message})`, { cause: err });
        },
      );
      readyMs = await Promise.race([revision.waitReady({ timeoutMs: this.readyTimeoutMs, signal }), pushFailed]);
      // close() or a newer save may have come while it got ready: then it is not switched to.
      throwIfAborted(signal, `deploy of ${name} aborted`);
    } catch (err) {
      // It ended on its own before it answered (not stopped for a newer save or shutdown).
      if (revision.exitedOnItsOwn && !revision.exitInfo?.error) await this.reportExit(revision, 'starting', events);
      throw await this.abandon(starting, err, signal);
    }
    const previous = this.active;
    const started: Running = { revision, service, dir };
    this.proxy.switchTo({ name, port });
    this.active = started;
    this.newest.set(service, iteration);
    this.watchForCrash(revision, events);
    events.emit({
      type: 'log',
      level: 'debug',
      message: `${name}: unpacked ${unpacked.layers} layers in ${Math.round(unpacked.ms)} ms (${unpacked.cachedLayers} from cache), ready in ${Math.round(readyMs)} ms`,
    });
    const settled = request.pushed.then(
      async () => {
        if (previous) this.retire(previous, events);
        this.recentChains = [unpacked.chains, ...this.recentChains].slice(0, 2);
        await pruneChains(this.chainsDir, new Set(this.recentChains.flat())).catch(() => undefined);
      },
      (err: unknown) => this.switchBack(started, previous, err, events),
    );
    return { result: { revision: name, url: this.proxy.url }, settled };
  }

  /**
   * The push of a revision already serving failed: the one before it serves again (unless it had
   * crashed: then nothing does, as before), and the new one is drained and stopped.
   */
  private switchBack(failed: Running, previous: Running | undefined, err: unknown, events: EventBus): void {
    if (this.active === failed) {
      const back = previous && !previous.crashed && previous.revision.exitInfo === undefined ? previous : undefined;
      this.proxy.switchTo(back ? { name: back.revision.name, port: back.revision.port } : undefined);
      this.active = back;
      const serving = back ? `${back.revision.name} serves again` : 'nothing serves until the next deploy';
      events.emit({ type: 'log', level: 'warn', message: `switched away from ${failed.revision.name}: its image was not pushed (${(err as Error).message}); ${serving}` });
    }
    this.retire(failed, events);
  }

  /** A revision that never served: stopped at once, its dir removed; the error says what keeps serving. */
  private async abandon(failed: { name: string; dir: string; revision: Revision | undefined }, err: unknown, signal: AbortSignal): Promise<unknown> {
    if (failed.revision) {
      await failed.revision.stop(0);
      this.live.delete(failed.revision);
    }
    await removeTree(failed.dir).catch(() => undefined);
    if (signal.aborted && !(err instanceof TskoError && err.code === 'DEPLOY')) return abortError(signal, `deploy of ${failed.name} aborted`);
    // A file system error while unpacking or starting (a full disk, a cache dir that is a file) is
    // this revision's failure, said as such, not an internal error of tsko's.
    const failure = err instanceof TskoError ? err : new TskoError('DEPLOY', `cannot start revision ${failed.name}: ${(err as Error).message}`, { cause: err });
    const serving = this.active && !this.active.crashed ? this.active.revision.name : undefined;
    if (failure.code === 'DEPLOY' && serving !== undefined) {
      const hint = `${serving} keeps serving`;
      return new TskoError('DEPLOY', failure.message, { hint: failure.hint ? `${failure.hint}; ${hint}` : hint, detail: failure.detail, cause: failure.cause ?? err });
    }
    return failure;
  }

  /** Drains the old revision's in-flight requests, then stops it and removes its rootfs. */
  private retire(old: Running, events: EventBus): void {
    const { revision } = old;
    const done = (async () => {
      await this.proxy.drained(revision.name, this.graceMs);
      await revision.stop(this.graceMs);
      this.live.delete(revision);
      this.proxy.release(revision.name);
      await removeTree(old.dir);
    })()
      .catch((err: unknown) => {
        events.emit({ type: 'log', level: 'warn', message: `stopping ${revision.name}: ${(err as Error).message}` });
      })
      .finally(() => this.retiring.delete(revision));
    this.retiring.set(revision, done);
  }

  /**
   * A serving revision that ends on its own is reported at once (revision.exit, phase serving),
   * and the front port answers a 503 page naming the crash until the next deploy.
   */
  private watchForCrash(revision: Revision, events: EventBus): void {
    void revision.exited.then(async () => {
      const active = this.active;
      if (active?.revision !== revision || this.closing || !revision.exitedOnItsOwn) return;
      active.crashed = true;
      const exit = await this.reportExit(revision, 'serving', events);
      // A deploy may have switched away from it while its last lines drained.
      if (this.active === active) this.proxy.markDown(revision.name, exit);
    });
  }

  /** Emits revision.exit with its exit status and last lines, and returns what it emitted. */
  private async reportExit(revision: Revision, phase: 'starting' | 'serving', events: EventBus): Promise<CrashReport> {
    const lastLines = await revision.lastLines(EXIT_LINES);
    const exit = revision.exitInfo;
    // Redacted as the bus redacts the event: the page shows what the reporters show.
    const report: CrashReport = { code: exit?.code ?? null, signal: exit?.signal ?? null, lastLines: lastLines.map(redact) };
    events.emit({ type: 'revision.exit', revision: revision.name, phase, ...report });
    return report;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closer.abort(new TskoError('ABORTED', 'the local target is closing'));
      const grace = Math.min(this.graceMs, CLOSE_GRACE_MS);
      await Promise.allSettled([this.proxy.close(), ...[...this.live].map((revision) => revision.stop(grace))]);
      await Promise.allSettled([...this.retiring.values()]);
      // A deploy that was unpacking when close() came ends now (its signal is aborted).
      await Promise.race([this.queue, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      for (const revision of this.live) revision.killNow();
      this.live.clear();
      this.active = undefined;
      process.off('exit', this.onProcessExit);
      await removeTree(this.revisionsDir).catch(() => undefined);
    })();
    return this.closing;
  }
}

/** Revisions run on this machine directly, so the image must be for this machine. */
function checkPlatform(os: string, architecture: string): void {
  const host = hostPlatform();
  if (!samePlatform({ os, architecture }, host)) {
    const here = formatPlatform(host);
    throw new TskoError('DEPLOY', `the local target runs revisions on this machine (${here}), but the image is ${os}/${architecture}`, {
      hint: `build for ${here} (--platform), or deploy to a cluster target`,
    });
  }
}

/** A port nothing listens on now, for the next revision's PORT. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
