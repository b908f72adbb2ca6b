// The typed events every stage emits and every reporter reads. The pipeline never prints: it emits
// these synchronously on one bus, and reporters (plain lines, JSON lines, the Ink dashboard)
// subscribe. Emitting never waits on a reporter, so a slow terminal cannot slow a build. The bus is
// also the one place events are redacted: no secret reaches any reporter.
//
// The JSON reporter writes these objects as they are, one per line: changing a field's name or
// meaning is a breaking change for editors and CI that read them.
import { redactValues } from './redact.js';

export type Stage = 'trigger' | 'build' | 'layer' | 'push' | 'deploy' | 'ready';

export type IterationResult = 'deployed' | 'unchanged' | 'build-failed' | 'push-failed' | 'deploy-failed' | 'cancelled';

/** One compiler diagnostic, as go printed it: `file:line[:col]: message`, then its indented notes. */
export interface Diagnostic {
  /** The file as go printed it, without a leading `./`. */
  file: string;
  line: number;
  column?: number;
  message: string;
  /** Lines that belong to it (indented notes such as `have (…)`/`want (…)`, or a `go get …` fix). */
  notes?: string[];
}

export interface ErrorInfo {
  code: string;
  message: string;
  hint?: string;
  detail?: string;
  /** A failed `go build`'s diagnostics, parsed once where the build ran, so no reporter re-parses text. */
  diagnostics?: Diagnostic[];
}

interface Base {
  /** ms since the epoch when the event was emitted. */
  time: number;
  /** The service (import path's base name) this event is about, when there is one. */
  service?: string;
  /** The iteration's number (`tsko dev` counts them; `tsko deploy` runs iteration 1); absent for build, resolve and the like. */
  iteration?: number;
}

export type TskoEvent =
  | (Base & { type: 'log'; level: 'info' | 'warn' | 'debug'; message: string })
  | (Base & { type: 'registry.embedded'; address: string; root: string; started: boolean })
  | (Base & { type: 'base.resolved'; importPath: string; base: string; digest: string; cached: boolean })
  | (Base & { type: 'stage.start'; stage: Stage; importPath?: string; platform?: string })
  /**
   * `ok` is the stage's real outcome: false when it failed or was cancelled (then `cancelled` is
   * true: a newer save, a config change or shutdown stopped it). `deploy` is the target's own call
   * (link and start; PATCH; service update), `ready` the wait after it; stages follow each other
   * except the local target's `deploy`, which runs alongside `push`.
   */
  | (Base & { type: 'stage.end'; stage: Stage; importPath?: string; platform?: string; ms: number; ok: boolean; cancelled?: boolean })
  /**
   * `compiled`/`packages`: how many of the build's packages go compiled rather than took from its
   * build cache, out of how many it needed (known for the first build of a binary in a process;
   * absent otherwise). A first iteration is cold only when it compiled most of them.
   */
  | (Base & { type: 'go.build'; importPath: string; platform: string; output: string; ms: number; compiled?: number; packages?: number })
  | (Base & { type: 'layer.built'; importPath: string; digest: string; diffId: string; size: number; ms: number })
  | (Base & {
      type: 'blob';
      action: 'existing' | 'known' | 'mounted' | 'pushed' | 'copied';
      repository: string;
      digest: string;
      size: number;
    })
  | (Base & { type: 'manifest'; action: 'existing' | 'pushed'; reference: string; digest: string; size: number })
  | (Base & { type: 'retry'; operation: string; attempt: number; cause: string; delayMs: number })
  | (Base & {
      type: 'published';
      importPath: string;
      reference: string;
      blobsPushed: number;
      blobsSkipped: number;
      bytesPushed: number;
    })
  | (Base & { type: 'iteration.start'; trigger: string[] })
  | (Base & {
      type: 'iteration.end';
      result: IterationResult;
      ms: number;
      reference?: string;
      revision?: string;
      url?: string;
      bytesPushed?: number;
      blobsPushed?: number;
      blobsSkipped?: number;
      error?: ErrorInfo;
    })
  | (Base & { type: 'revision.log'; revision: string; stream: 'stdout' | 'stderr'; line: string })
  /**
   * Watching paused or resumed (the dashboard's `p` key). While paused, saves are queued, not
   * built: each queued save re-emits this with the service and the files it is waiting on.
   */
  | (Base & { type: 'watch'; paused: boolean; queued?: string[] })
  /** A remote rollout's progress (kubectl's and gcloud's status lines), for the dashboard. */
  | (Base & { type: 'rollout'; target: 'kubernetes' | 'cloudrun'; message: string })
  /**
   * A remote target's check before the first build (context reachable, credentials valid, the
   * Deployment/service and container there, permission to patch): `ok: false` carries the target's
   * own reason (`Forbidden`, `NotFound`, `PERMISSION_DENIED`, …) and the one-line error follows.
   */
  | (Base & { type: 'preflight'; target: 'kubernetes' | 'cloudrun'; ok: boolean; ms: number; reason?: string; message: string })
  /**
   * A rollout that cannot succeed, reported the moment the target says so (ReplicaFailure,
   * FailedCreate, a paused Deployment, ErrImagePull, a crash loop, a Cloud Run condition), with the
   * target's own reason; the iteration's error event follows.
   */
  | (Base & { type: 'rollout.failed'; target: 'kubernetes' | 'cloudrun'; reason: string; message: string; logs?: string[] })
  /**
   * A local revision's process ended on its own (not stopped by tsko): while starting, or after it
   * was serving (`crashed`). `code`/`signal` as Node reports them; `lastLines` its last log lines.
   */
  | (Base & { type: 'revision.exit'; revision: string; phase: 'starting' | 'serving'; code: number | null; signal: string | null; lastLines: string[] })
  /** `tsko dev` writes every event of the session to this file (JSON lines); emitted once, first. */
  | (Base & { type: 'session.log'; path: string })
  | (Base & { type: 'error'; error: ErrorInfo });

export type TskoEventType = TskoEvent['type'];

/** Distributes an event to the member of the union with that `type`, without the common fields. */
export type EventOf<T extends TskoEventType> = Extract<TskoEvent, { type: T }>;

export type EventInput = TskoEvent extends infer E ? (E extends TskoEvent ? Omit<E, 'time'> & { time?: number } : never) : never;

export type Listener = (event: TskoEvent) => void;

export interface EventBus {
  emit(event: EventInput): void;
  subscribe(listener: Listener): () => void;
}

/**
 * The one bus of a command. Every event is redacted here, once, before any reporter sees it, so
 * the plain lines, the JSON lines and the dashboard cannot differ in what they let through.
 */
export function createEventBus(): EventBus {
  const listeners = new Set<Listener>();
  return {
    emit(input) {
      if (listeners.size === 0) return;
      const event = redactValues({ time: Date.now(), ...input }) as TskoEvent;
      for (const listener of listeners) {
        try {
          listener(event);
        } catch {
          // A broken reporter must not break the pipeline.
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** A bus with fixed fields (service, iteration) merged into every event emitted through it. */
export function withFields(bus: EventBus, fields: Partial<Pick<Base, 'service' | 'iteration'>>): EventBus {
  return {
    emit: (event) => bus.emit({ ...fields, ...event } as EventInput),
    subscribe: (listener) => bus.subscribe(listener),
  };
}
