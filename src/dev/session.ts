// `tsko dev` as a library: one daemon for several services. It resolves each service once, keeps
// one pipeline (registry client, base cache, known blobs) for the whole run, watches exactly what
// each service's build reads, routes every save to the services it concerns, and re-resolves the
// config when its file changes.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolveConfig, type InlineConfig, type ResolvedConfig } from '../config/resolve.js';
import { TskoError, toTskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Platform } from '../image/types.js';
import type { Target } from '../deploy/target.js';
import { makePipeline, type Pipeline, type PipelineOptions } from '../publish/pipeline.js';
import type { NamingMode } from '../publish/naming.js';
import type { Repository } from '../registry/reference.js';
import { computeScope, scopeContains, type ServiceScope } from './scope.js';
import { ServiceLoop } from './service-loop.js';
import { ScopeWatcher, type FileChange } from './watcher.js';

export interface DevServiceRequest {
  /** Import path or ./dir. */
  target: string;
  port?: number;
}

export interface DevSessionOptions {
  inline: InlineConfig;
  config: ResolvedConfig;
  services: DevServiceRequest[];
  events: EventBus;
  dockerRepo: string;
  naming: NamingMode;
  platform: Platform;
  pipelineOptions?: Omit<PipelineOptions, 'config' | 'events'>;
  makeTarget: (service: string, request: DevServiceRequest, index: number) => Promise<Target>;
  debounceMs?: number;
  /** Called after each push (e.g. registry retention), never awaited by the loop. */
  afterPush?: (repository: Repository) => Promise<void>;
}

export interface DevSession {
  services: ServiceLoop[];
  /** Rebuild every service now (the `r` key), paused or not. */
  rebuildAll(reason: string): void;
  /** Stop or restart building on saves (the `p` key); saves made while paused are built on resume. */
  setPaused(paused: boolean): void;
  readonly paused: boolean;
  /** Resolves when nothing is running or scheduled. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

interface Watched {
  loop: ServiceLoop;
  scope: ServiceScope;
}

export async function startDevSession(options: DevSessionOptions): Promise<DevSession> {
  const { events } = options;
  let config = options.config;
  let pipeline: Pipeline = makePipeline({ config, events, ...options.pipelineOptions });
  const watched: Watched[] = [];
  const targets: Target[] = [];
  let watcher: ScopeWatcher | undefined;
  let closed = false;
  let paused = false;

  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.all(watched.map((w) => w.loop.close()));
    await Promise.allSettled([watcher?.close(), ...targets.map((t) => t.close())]);
    await pipeline.close();
  };

  try {
    // Resolve every service before starting anything: a bad argument fails the whole command.
    const resolved = await Promise.all(options.services.map((service) => pipeline.builder.resolveTarget(service.target)));
    const names = new Set<string>();
    for (const [index, target] of resolved.entries()) {
      const request = options.services[index] as DevServiceRequest;
      const name = uniqueName(target.pkg.importPath, names);
      targets.push(await options.makeTarget(name, request, index));
      const loop = new ServiceLoop({
        name,
        resolved: target,
        pipeline: () => pipeline,
        target: targets[index] as Target,
        dockerRepo: options.dockerRepo,
        naming: options.naming,
        platform: options.platform,
        events,
        debounceMs: options.debounceMs ?? 10,
        ...(options.afterPush ? { afterPush: (repo: Repository) => void options.afterPush?.(repo).catch(() => undefined) } : {}),
      });
      watched.push({ loop, scope: { dirs: new Set(), trees: new Set(), files: new Set() } });
    }

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
        const e = toTskoError(err);
        events.emit({ type: 'log', level: 'warn', service: entry.loop.name, message: `cannot refresh what to watch: ${e.message}` });
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

    const onConfigChange = async () => {
      try {
        config = await resolveConfig({ ...options.inline, fresh: true });
        const old = pipeline;
        pipeline = makePipeline({ config, events, ...options.pipelineOptions });
        await old.close();
        events.emit({ type: 'log', level: 'info', message: `config reloaded from ${config.configFile ?? 'defaults'}` });
        for (const { loop } of watched) loop.rebuild(config.configFile ?? 'config');
      } catch (err) {
        const e = toTskoError(err);
        events.emit({ type: 'error', error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
      }
    };

    const onChange = (change: FileChange) => {
      if (closed) return;
      if (config.dependencies.includes(change.path)) {
        void onConfigChange();
        return;
      }
      for (const entry of watched) {
        const dirEvent = (change.kind === 'addDir' || change.kind === 'unlinkDir') && (entry.scope.dirs.has(change.path) || entry.scope.trees.has(change.path));
        // A re-created dir is a new inode: watch it afresh so the files written into it are seen.
        if (dirEvent && change.kind === 'addDir') watcher?.rewatch(change.path);
        if (dirEvent || scopeContains(entry.scope, change.path)) entry.loop.changed([change.path], change.at);
      }
    };

    watcher = new ScopeWatcher(onChange, (err) => events.emit({ type: 'log', level: 'warn', message: `watcher: ${toTskoError(err).message}` }));
    await Promise.all(watched.map(refreshScope));
    await watcher.whenReady();
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
    idle: async () => {
      await Promise.all(watched.map((w) => w.loop.idle()));
    },
    close,
  };
}

function uniqueName(importPath: string, taken: Set<string>): string {
  const base = (importPath.split('/').pop() || 'app').toLowerCase().replace(/[^a-z0-9-]/g, '-');
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  if (taken.size > 100) throw new TskoError('USAGE', 'too many services');
  taken.add(name);
  return name;
}
