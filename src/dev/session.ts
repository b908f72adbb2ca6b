// `tsko dev` as a library: one daemon for several services. It resolves each service, keeps one
// pipeline (registry client, base cache, known blobs) and one target per service for as long as
// the config stays the same, watches exactly what each service's build reads, and routes every
// save to the services it concerns. When a config file changes it resolves the config again with
// the same flags, stops the running iterations (they end `cancelled`) before it closes the old
// pipeline, re-resolves every service and rebuilds them with the new config.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolveConfig, type InlineConfig, type ResolvedConfig } from '../config/resolve.js';
import type { DevService } from '../config/dev-options.js';
import { TskoError, toErrorInfo } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Target } from '../deploy/target.js';
import { serviceNameOf } from '../publish/naming.js';
import { makePipeline, type Pipeline } from '../publish/pipeline.js';
import type { InProcessRegistry } from '../publish/registry-writer.js';
import type { Repository } from '../registry/reference.js';
import { retainLatest } from '../registry/server/index.js';
import { computeScope, scopeContains, type ServiceScope } from './scope.js';
import { ServiceLoop } from './service-loop.js';
import { ScopeWatcher, type FileChange } from './watcher.js';

export interface DevSessionOptions {
  /** What the command line said; resolved again, with the same flags, when the config changes. */
  inline: InlineConfig;
  /** `inline` resolved (with command `dev`, so `config.dev` is set). */
  config: ResolvedConfig;
  events: EventBus;
  /** KO_DOCKER_REPO, or the embedded registry's address. */
  dockerRepo: string;
  /** The embedded registry's storage, when images go there: the session keeps dev.keepImages per repository. */
  embeddedRoot?: string;
  /** The embedded registry, when this process serves it. */
  inProcess?: InProcessRegistry;
  /** A target for one service, from the config's dev settings; index counts the services. */
  makeTarget: (service: string, request: DevService, index: number, config: ResolvedConfig) => Promise<Target>;
}

export interface DevSession {
  services: ServiceLoop[];
  /** Rebuild every service now (the `r` key), paused or not. */
  rebuildAll(reason: string): void;
  /** Stop or restart building on saves (the `p` key); saves made while paused are built on resume. */
  setPaused(paused: boolean): void;
  readonly paused: boolean;
  /** Resolves the config again and applies it, as a change of its file does. */
  reload(): Promise<void>;
  /** Resolves when nothing is running or scheduled. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

interface Watched {
  loop: ServiceLoop;
  request: DevService;
  target: Target;
  /** Its target could not be made at the last reload; the next reload tries again. */
  unavailable?: boolean;
  scope: ServiceScope;
}

/** Quiet time after a config file's last change before it is resolved again. */
const CONFIG_QUIET_MS = 100;

export async function startDevSession(options: DevSessionOptions): Promise<DevSession> {
  const { events } = options;
  let config = options.config;
  const dev = () => {
    if (!config.dev) throw new TskoError('INTERNAL', 'the dev session needs a config resolved for `tsko dev`');
    return config.dev;
  };
  const pipelineFor = (resolved: ResolvedConfig): Pipeline => {
    const root = options.embeddedRoot;
    return makePipeline(resolved, {
      events,
      dockerRepo: options.dockerRepo,
      inProcess: options.inProcess,
      ...(root ? { retain: (repository: Repository) => retainLatest(root, repository.repository, dev().keepImages) } : {}),
    });
  };
  let pipeline = pipelineFor(config);
  const watched: Watched[] = [];
  let watcher: ScopeWatcher | undefined;
  let closed = false;
  let paused = false;
  const preflightAbort = new AbortController();
  /** The reload running now, if any (they run one after another). */
  let reloading: Promise<void> = Promise.resolve();

  // A serving revision that crashed serves nothing any more: the next build of the same program
  // (the `r` key, or any save) is a deploy of a new revision, not "unchanged".
  const stopCrashWatch = events.subscribe((event) => {
    if (event.type !== 'revision.exit' || event.phase !== 'serving') return;
    for (const { loop } of watched) if (loop.name === event.service) loop.forgetServing();
  });

  const close = async () => {
    if (closed) return;
    closed = true;
    stopCrashWatch();
    preflightAbort.abort(new TskoError('ABORTED', 'the session stopped'));
    if (reloadTimer) clearTimeout(reloadTimer);
    await reloading;
    await Promise.all(watched.map((w) => w.loop.close()));
    await Promise.allSettled([watcher?.close(), ...watched.map((w) => w.target.close())]);
    await pipeline.close();
  };

  const refreshScope = async (entry: Watched) => {
    try {
      const next = await computeScope(entry.loop.importPath, entry.loop.mainDir, {
        goBinary: config.goBinary,
        cwd: entry.loop.goCwd,
        env: { ...config.env },
        extraFiles: config.dependencies,
      });
      // A package dir that was deleted drops out of `go list`, but re-creating it must still
      // trigger a build: keep watching dirs that vanished.
      for (const dir of entry.scope.dirs) if (!next.dirs.has(dir) && !existsSync(dir)) next.dirs.add(dir);
      entry.scope = next;
    } catch (err) {
      // A go.mod that does not parse mid-edit: keep the old scope and keep watching.
      events.emit({ type: 'log', level: 'warn', service: entry.loop.name, message: `cannot refresh what to watch: ${toErrorInfo(err).message}` });
    }
    updateWatcher();
  };

  const updateWatcher = () => {
    const dirs = new Set<string>();
    const trees = new Set<string>();
    for (const { scope } of watched) {
      for (const dir of scope.dirs) {
        dirs.add(dir);
        // The parent too, so a package dir that is deleted and re-created is noticed.
        dirs.add(dirname(dir));
      }
      for (const tree of scope.trees) {
        trees.add(tree);
        dirs.add(dirname(tree));
      }
      for (const file of scope.files) dirs.add(dirname(file));
    }
    for (const file of config.dependencies) dirs.add(dirname(file));
    watcher?.update(dirs, trees);
  };

  const applyConfig = async () => {
    let next: ResolvedConfig;
    try {
      next = await resolveConfig({ ...options.inline, fresh: true });
      if (!next.dev) throw new TskoError('INTERNAL', 'the config was not resolved for `tsko dev`');
    } catch (err) {
      // A half-typed edit: say what is wrong and keep running on the config that worked.
      events.emit({ type: 'error', error: toErrorInfo(err) });
      return;
    }
    const before = config;
    try {
      // Nothing may still use the old pipeline when it closes: stop the running iterations first.
      await Promise.all(watched.map((w) => w.loop.hold('the config changed')));
      const old = pipeline;
      config = next;
      pipeline = pipelineFor(config);
      // Nothing uses it any more; a token request still in flight must not hold up the reload.
      old.close().catch((err: unknown) => events.emit({ type: 'log', level: 'warn', message: `closing the previous registry client: ${toErrorInfo(err).message}` }));
      for (const warning of config.warnings) events.emit({ type: 'log', level: 'warn', message: warning });
      if (JSON.stringify(before.dev?.services) !== JSON.stringify(config.dev?.services)) {
        events.emit({ type: 'log', level: 'warn', message: 'dev.services changed: restart tsko dev to add or remove services' });
      }
      const retarget = targetSettings(before) !== targetSettings(config);
      await replaceTargets(watched.filter((entry) => retarget || entry.unavailable));
      await Promise.all(watched.map(reresolve));
      events.emit({ type: 'log', level: 'info', message: `config reloaded from ${config.configFile ?? 'defaults'}` });
    } finally {
      for (const entry of watched) {
        void refreshScope(entry);
        entry.loop.release();
        entry.loop.rebuild(config.configFile ?? 'config');
      }
    }
  };

  /**
   * New targets for `entries` (the target settings changed, or theirs could not be made before):
   * the old ones stop first. One that cannot be made (its port is taken) fails each deploy with
   * that error, and is tried again on the next reload.
   */
  const replaceTargets = async (entries: Watched[]) => {
    for (const entry of entries) {
      const kind = entry.target.kind;
      await entry.target.close().catch(() => undefined);
      entry.loop.forgetServing();
      try {
        entry.target = await options.makeTarget(entry.loop.name, entry.request, watched.indexOf(entry), config);
        entry.unavailable = false;
      } catch (err) {
        events.emit({ type: 'error', service: entry.loop.name, error: toErrorInfo(err) });
        entry.target = unavailableTarget(kind, err);
        entry.unavailable = true;
      }
    }
  };

  const reresolve = async (entry: Watched) => {
    try {
      entry.loop.updateResolved(await pipeline.resolve(entry.request.target));
    } catch (err) {
      events.emit({ type: 'error', service: entry.loop.name, error: toErrorInfo(err) });
    }
  };

  /** Reloads run one after another, and a failed one does not stop the next. */
  const reload = () => {
    reloading = reloading
      .then(() => (closed ? undefined : applyConfig()))
      .catch((err: unknown) => events.emit({ type: 'error', error: toErrorInfo(err) }));
    return reloading;
  };

  /** An editor's save is often two events (truncate, write): one reload after a short quiet spell. */
  let reloadTimer: NodeJS.Timeout | undefined;
  const scheduleReload = () => {
    if (reloadTimer) clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      reloadTimer = undefined;
      void reload();
    }, CONFIG_QUIET_MS);
  };

  const onChange = (change: FileChange) => {
    if (closed) return;
    if (config.dependencies.includes(change.path)) {
      scheduleReload();
      return;
    }
    for (const entry of watched) {
      const dirEvent = (change.kind === 'addDir' || change.kind === 'unlinkDir') && (entry.scope.dirs.has(change.path) || entry.scope.trees.has(change.path));
      // A re-created dir is a new inode: watch it afresh so the files written into it are seen.
      if (dirEvent && change.kind === 'addDir') watcher?.rewatch(change.path);
      if (dirEvent || scopeContains(entry.scope, change.path)) entry.loop.changed([change.path], change.at);
    }
  };

  try {
    // Resolve every service before starting anything: a bad argument fails the whole command.
    const services = dev().services;
    const resolved = await Promise.all(services.map((service) => pipeline.resolve(service.target)));
    const names = new Set<string>();
    for (const [index, target] of resolved.entries()) {
      const request = services[index] as DevService;
      const name = uniqueName(target.pkg.importPath, names);
      const entry: Watched = {
        request,
        target: await options.makeTarget(name, request, index, config),
        scope: { dirs: new Set(), trees: new Set(), files: new Set() },
        loop: new ServiceLoop({ name, resolved: target, pipeline: () => pipeline, target: () => entry.target, events, debounceMs: dev().debounceMs }),
      };
      watched.push(entry);
    }
    // A remote target that cannot take a deploy (no such Deployment, no permission, an unknown
    // project) fails the command before the first build, in one line with the fix. Its network
    // round trips overlap the scope's `go list` and the watcher's start; the close() below aborts
    // a preflight still running when the session stops.
    const preflights = Promise.all(watched.map(async (entry) => entry.target.preflight?.({ service: entry.loop.name, importPath: entry.loop.importPath, events, signal: preflightAbort.signal })));
    preflights.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile

    watcher = new ScopeWatcher(onChange, (err) => events.emit({ type: 'log', level: 'warn', message: `watcher: ${toErrorInfo(err).message}` }));
    await Promise.all(watched.map(refreshScope));
    await watcher.whenReady();
    await preflights;
    for (const entry of watched) {
      entry.loop.onIterationEnd = () => void refreshScope(entry);
      entry.loop.rebuild('start');
    }
  } catch (err) {
    await close();
    throw err;
  }

  return {
    services: watched.map((w) => w.loop),
    rebuildAll: (reason) => watched.forEach((w) => w.loop.rebuild(reason)),
    setPaused(value) {
      if (value === paused || closed) return;
      paused = value;
      for (const { loop } of watched) loop.setPaused(value);
      events.emit({ type: 'watch', paused: value });
    },
    get paused() {
      return paused;
    },
    reload,
    idle: async () => {
      await reloading;
      await Promise.all(watched.map((w) => w.loop.idle()));
    },
    close,
  };
}

/** A target that could not be made: every deploy fails with why. */
function unavailableTarget(kind: Target['kind'], cause: unknown): Target {
  return { kind, deploy: () => Promise.reject(cause), close: () => Promise.resolve() };
}

/** What a target is made from: when it changes, the targets are made again. */
function targetSettings(config: ResolvedConfig): string {
  const dev = config.dev;
  return JSON.stringify([dev?.target, dev?.port, dev?.readyTimeoutMs, dev?.kubernetes, dev?.cloudrun]);
}

function uniqueName(importPath: string, taken: Set<string>): string {
  const base = serviceNameOf(importPath);
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  if (taken.size > 100) throw new TskoError('USAGE', 'too many services');
  taken.add(name);
  return name;
}
