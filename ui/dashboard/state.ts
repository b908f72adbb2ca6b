// The dashboard's model and its pure reducer: `reduce(state, event)` folds the dev loop's events
// (and the dashboard's own few actions) into what the screen shows — per service the newest
// iteration's stages, the last result, what is serving, a bounded history and log tail, and the
// cold and warm samples the timing table is made of. No clocks, no I/O: tests feed it arrays.
import type { ErrorInfo, IterationResult, Stage, TskoEvent } from '../../src/events.js';
import { goWorkOf, isColdBuild, type GoWork } from '../first-iteration.js';

export const STAGES: readonly Stage[] = ['trigger', 'build', 'layer', 'push', 'deploy', 'ready'];

/** How many finished iterations the history keeps, warm samples the stats use, log lines kept. */
export const LIMITS = { history: 50, warm: 500, logs: 200, notices: 3 } as const;

/** `cancelled`: stopped by a newer save, a config change or shutdown, not failed. */
export type StageStatus = 'running' | 'ok' | 'failed' | 'cancelled';

export interface StageRun {
  status: StageStatus;
  /** Event time (ms since the epoch) of the stage's start. */
  startedAt: number;
  ms?: number;
}

export interface IterationEnd {
  result: IterationResult;
  /** Save → serving (or → failure), as the loop measured it. */
  ms: number;
  endedAt: number;
  reference?: string;
  revision?: string;
  url?: string;
  bytesPushed: number;
  blobsPushed: number;
  blobsSkipped: number;
  error?: ErrorInfo;
}

export interface Iteration {
  iteration: number;
  trigger: string[];
  startedAt: number;
  stages: Partial<Record<Stage, StageRun>>;
  end?: IterationEnd;
}

/** A finished iteration as the history and the timing table need it. */
export interface HistoryEntry {
  iteration: number;
  result: IterationResult;
  ms: number;
  endedAt: number;
  stages: Partial<Record<Stage, number>>;
  trigger: string[];
  revision?: string;
}

export interface Serving {
  revision: string;
  url?: string;
  since: number;
  iteration: number;
}

export interface LogLine {
  time: number;
  /** The revision that wrote it (local target); absent for rollout messages. */
  revision?: string;
  stream: 'stdout' | 'stderr' | 'rollout';
  line: string;
}

/** A revision that was serving and ended on its own (the `revision.exit` event, phase `serving`). */
export interface Crash {
  revision: string;
  code: number | null;
  signal: string | null;
  lastLines: string[];
  time: number;
}

/**
 * Whether the first deployed iteration was a cold one: `cold` when its go build compiled most of
 * the packages, `warm` when go's cache already held them, `unknown` when the build did not say.
 */
export type Coldness = 'cold' | 'warm' | 'unknown';

export interface FirstRun {
  work?: GoWork;
  blobsPushed: number;
  blobsSkipped: number;
}

export interface ServiceState {
  name: string;
  importPath?: string;
  base?: string;
  /** Iterations started and not yet ended (a superseded one ends after its successor starts). */
  running: Iteration[];
  lastEnded?: Iteration;
  /** Finished iterations, oldest first, at most LIMITS.history. */
  history: HistoryEntry[];
  /** The first iteration that deployed: the run every warm one is compared with, when it was cold. */
  cold?: HistoryEntry;
  /** What the first deployed iteration was; a speed-up is shown only from a `cold` one. */
  coldness?: Coldness;
  /** What the first deployed iteration found: go's work (when its build said), blobs pushed and already there. */
  firstRun?: FirstRun;
  /** What go did in the newest build that said (its iteration, and packages compiled of all). */
  buildWork?: { iteration: number; work: GoWork };
  /** The serving revision crashed after this (cleared by the next deploy). */
  crashed?: Crash;
  /** Iterations that deployed after the cold one (since the last clear), oldest first. */
  warm: HistoryEntry[];
  serving?: Serving;
  logs: LogLine[];
  /** Saves waiting while watching is paused. */
  queued: string[];
}

export interface Notice {
  level: 'info' | 'warn' | 'error';
  message: string;
  hint?: string;
  time: number;
  service?: string;
}

export interface DashboardState {
  services: ServiceState[];
  /** The session log file `tsko dev` writes. */
  sessionLog?: string;
  registry?: { address: string; started: boolean };
  paused: boolean;
  notices: Notice[];
}

/** The dashboard's own actions, beside the loop's events. */
export type DashboardAction = TskoEvent | { type: 'dashboard.clear-history' };

export function initialState(): DashboardState {
  return { services: [], paused: false, notices: [] };
}

/** The iteration the stage row shows: the newest one started, running or not. */
export function currentIteration(service: ServiceState): Iteration | undefined {
  let newest: Iteration | undefined = service.lastEnded;
  for (const it of service.running) if (!newest || it.iteration > newest.iteration) newest = it;
  return newest;
}

export function isRunning(state: DashboardState): boolean {
  return state.services.some((s) => s.running.length > 0);
}

function newService(name: string): ServiceState {
  return { name, running: [], history: [], warm: [], logs: [], queued: [] };
}

function pushBounded<T>(list: T[], item: T, limit: number): T[] {
  const next = list.length >= limit ? list.slice(list.length - limit + 1) : list.slice();
  next.push(item);
  return next;
}

function withNotice(state: DashboardState, notice: Notice): DashboardState {
  return { ...state, notices: pushBounded(state.notices, notice, LIMITS.notices) };
}

function updateService(state: DashboardState, name: string, fn: (service: ServiceState) => ServiceState): DashboardState {
  const index = state.services.findIndex((s) => s.name === name);
  const services = state.services.slice();
  if (index < 0) services.push(fn(newService(name)));
  else services[index] = fn(services[index] as ServiceState);
  return { ...state, services };
}

/** Applies `fn` to the running iteration `number`, creating it if the dashboard missed its start. */
function updateIteration(service: ServiceState, number: number, time: number, fn: (it: Iteration) => Iteration): ServiceState {
  const index = service.running.findIndex((it) => it.iteration === number);
  if (index < 0) {
    // An event for an iteration already ended (a late stage.end) changes nothing.
    if (service.lastEnded && service.lastEnded.iteration >= number) return service;
    return { ...service, running: [...service.running, fn({ iteration: number, trigger: [], startedAt: time, stages: {} })] };
  }
  const running = service.running.slice();
  running[index] = fn(running[index] as Iteration);
  return { ...service, running };
}

function endIteration(service: ServiceState, event: Extract<TskoEvent, { type: 'iteration.end' }>, number: number): ServiceState {
  const found = service.running.find((it) => it.iteration === number) ?? { iteration: number, trigger: [], startedAt: event.time - event.ms, stages: {} };
  // A stage still running when its iteration ends was cut short (cancelled or failed under it).
  const cut: StageStatus = event.result === 'cancelled' ? 'cancelled' : 'failed';
  const stages: Partial<Record<Stage, StageRun>> = {};
  for (const stage of STAGES) {
    const run = found.stages[stage];
    if (run) stages[stage] = run.status === 'running' ? { status: cut, startedAt: run.startedAt, ms: Math.max(0, event.time - run.startedAt) } : run;
  }
  const end: IterationEnd = {
    result: event.result,
    ms: event.ms,
    endedAt: event.time,
    bytesPushed: event.bytesPushed ?? 0,
    blobsPushed: event.blobsPushed ?? 0,
    blobsSkipped: event.blobsSkipped ?? 0,
    ...(event.reference ? { reference: event.reference } : {}),
    ...(event.revision ? { revision: event.revision } : {}),
    ...(event.url ? { url: event.url } : {}),
    ...(event.error ? { error: event.error } : {}),
  };
  const ended: Iteration = { ...found, stages, end };
  const stageMs: Partial<Record<Stage, number>> = {};
  for (const stage of STAGES) {
    const run = stages[stage];
    if (run?.status === 'ok' && run.ms !== undefined) stageMs[stage] = run.ms;
  }
  const entry: HistoryEntry = {
    iteration: number,
    result: event.result,
    ms: event.ms,
    endedAt: event.time,
    stages: stageMs,
    trigger: found.trigger,
    ...(event.revision ? { revision: event.revision } : {}),
  };
  let next: ServiceState = {
    ...service,
    running: service.running.filter((it) => it.iteration !== number),
    lastEnded: !service.lastEnded || service.lastEnded.iteration < number ? ended : service.lastEnded,
    history: pushBounded(service.history, entry, LIMITS.history),
  };
  if (event.result === 'deployed') {
    next = {
      ...next,
      ...(event.revision ? { serving: { revision: event.revision, ...(event.url ? { url: event.url } : {}), since: event.time, iteration: number } } : {}),
      ...(next.cold
        ? { warm: pushBounded(next.warm, entry, LIMITS.warm) }
        : { cold: entry, ...firstRunOf(service, number, end) }),
    };
    delete next.crashed;
  }
  return next;
}

/** The first deployed iteration's coldness, from what its own go build said, and its push. */
function firstRunOf(service: ServiceState, iteration: number, end: IterationEnd): { coldness: Coldness; firstRun: FirstRun } {
  const said = service.buildWork?.iteration === iteration ? service.buildWork.work : undefined;
  const push = { blobsPushed: end.blobsPushed, blobsSkipped: end.blobsSkipped };
  if (!said) return { coldness: 'unknown', firstRun: push };
  return { coldness: isColdBuild(said) ? 'cold' : 'warm', firstRun: { ...push, work: said } };
}

export function reduce(state: DashboardState, action: DashboardAction): DashboardState {
  if (action.type === 'dashboard.clear-history') {
    return {
      ...state,
      notices: [],
      services: state.services.map((s) => ({ ...s, history: [], warm: [] })),
    };
  }
  const event = action;
  const service = event.service;
  const number = event.iteration;
  switch (event.type) {
    case 'registry.embedded':
      return { ...state, registry: { address: event.address, started: event.started } };
    case 'iteration.start':
      if (!service || number === undefined) return state;
      return updateService(state, service, (s) => ({
        ...updateIteration({ ...s, queued: [] }, number, event.time, () => ({ iteration: number, trigger: event.trigger, startedAt: event.time, stages: {} })),
      }));
    case 'stage.start':
      if (!service || number === undefined) return state;
      return updateService(state, service, (s) =>
        updateIteration({ ...s, ...(event.importPath ? { importPath: event.importPath } : {}) }, number, event.time, (it) => ({
          ...it,
          stages: { ...it.stages, [event.stage]: { status: 'running', startedAt: event.time } },
        })),
      );
    case 'stage.end':
      if (!service || number === undefined) return state;
      return updateService(state, service, (s) =>
        updateIteration(s, number, event.time, (it) => {
          const startedAt = it.stages[event.stage]?.startedAt ?? event.time - event.ms;
          const status: StageStatus = event.ok ? 'ok' : event.cancelled ? 'cancelled' : 'failed';
          return { ...it, stages: { ...it.stages, [event.stage]: { status, startedAt, ms: event.ms } } };
        }),
      );
    case 'iteration.end':
      if (!service || number === undefined) return state;
      return updateService(state, service, (s) => endIteration(s, event, number));
    case 'go.build': {
      const work = goWorkOf(event);
      if (!service || number === undefined || !work) return state;
      return updateService(state, service, (s) => ({ ...s, buildWork: { iteration: number, work } }));
    }
    case 'revision.exit':
      // Only the serving revision's end is news here; one that failed to start fails its iteration.
      if (!service || event.phase !== 'serving') return state;
      return updateService(state, service, (s) =>
        s.serving && s.serving.revision !== event.revision
          ? s
          : { ...s, crashed: { revision: event.revision, code: event.code, signal: event.signal, lastLines: event.lastLines, time: event.time } },
      );
    case 'session.log':
      return { ...state, sessionLog: event.path };
    case 'base.resolved':
      if (!service) return state;
      return updateService(state, service, (s) => ({ ...s, base: event.base, importPath: event.importPath }));
    case 'revision.log':
      if (!service) return state;
      return updateService(state, service, (s) => ({
        ...s,
        logs: pushBounded(s.logs, { time: event.time, revision: event.revision, stream: event.stream, line: event.line }, LIMITS.logs),
      }));
    case 'watch': {
      const paused = event.paused;
      let next: DashboardState = { ...state, paused };
      if (service) next = updateService(next, service, (s) => ({ ...s, queued: event.queued ?? [] }));
      if (!paused) next = { ...next, services: next.services.map((s) => (s.queued.length ? { ...s, queued: [] } : s)) };
      return next;
    }
    case 'log':
      if (event.level === 'debug') return state;
      return withNotice(state, { level: event.level, message: event.message, time: event.time, ...(service ? { service } : {}) });
    case 'retry':
      return withNotice(state, {
        level: 'warn',
        message: `retrying ${event.operation} (attempt ${event.attempt}: ${event.cause})`,
        time: event.time,
        ...(service ? { service } : {}),
      });
    case 'error':
      return withNotice(state, {
        level: 'error',
        message: event.error.message,
        ...(event.error.hint ? { hint: event.error.hint } : {}),
        time: event.time,
        ...(service ? { service } : {}),
      });
    case 'rollout':
      // A remote target's progress lines are its "logs" in the panel.
      if (!service) return state;
      return updateService(state, service, (s) => ({
        ...s,
        logs: pushBounded(s.logs, { time: event.time, stream: 'rollout', line: event.message }, LIMITS.logs),
      }));
    case 'rollout.failed': {
      // The target's own reason as the notice; a crash's last log lines go to the service's panel.
      const notice = withNotice(state, { level: 'error', message: `rollout failed: ${event.reason}: ${event.message}`, time: event.time, ...(service ? { service } : {}) });
      if (!service || !event.logs?.length) return notice;
      return updateService(notice, service, (s) => ({
        ...s,
        logs: (event.logs ?? []).reduce((logs, line) => pushBounded(logs, { time: event.time, stream: 'rollout' as const, line }, LIMITS.logs), s.logs),
      }));
    }
    case 'preflight':
      if (!event.ok) {
        return withNotice(state, { level: 'error', message: `${event.target} preflight failed${event.reason ? `: ${event.reason}` : ''}: ${event.message}`, time: event.time, ...(service ? { service } : {}) });
      }
      if (!service) return state;
      return updateService(state, service, (s) => ({
        ...s,
        logs: pushBounded(s.logs, { time: event.time, stream: 'rollout', line: `preflight ok: ${event.message}` }, LIMITS.logs),
      }));
    default:
      return state;
  }
}

export function reduceAll(events: Iterable<DashboardAction>, state: DashboardState = initialState()): DashboardState {
  let next = state;
  for (const event of events) next = reduce(next, event);
  return next;
}
