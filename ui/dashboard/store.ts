// The dashboard's outside store (Gatsby's shape): the bus listener only queues the event, which is
// O(1) and never waits on the terminal; a timer folds the queue through `reduce` at most once per
// interval (10 a second by default) and tells the view. While an iteration runs the same timer
// ticks, so spinners and elapsed times move; when idle it slows to once a second for "N s ago".
import type { TskoEvent } from '../../src/events.js';
import { initialState, isRunning, reduce, type DashboardAction, type DashboardState } from './state.js';

export interface EventSource {
  subscribe(listener: (event: TskoEvent) => void): () => void;
}

export interface Snapshot {
  state: DashboardState;
  /** The clock when this snapshot was made; running stages show now − their start. */
  now: number;
  /** Counts snapshots; spinners step with it. */
  frame: number;
}

export interface DashboardStore {
  getSnapshot(): Snapshot;
  subscribe(onChange: () => void): () => void;
  /** The dashboard's own actions (clear history) go through the same queue. */
  dispatch(action: DashboardAction): void;
  /** Folds whatever is queued now (tests; the last frame before exit). */
  flush(): void;
  close(): void;
}

export interface StoreOptions {
  /** Shortest time between two snapshots. */
  intervalMs?: number;
  /** Time between snapshots when nothing runs (time-ago texts). */
  idleIntervalMs?: number;
  clock?: () => number;
}

export function createDashboardStore(source: EventSource, options: StoreOptions = {}): DashboardStore {
  const intervalMs = options.intervalMs ?? 100;
  const idleIntervalMs = options.idleIntervalMs ?? 1000;
  const clock = options.clock ?? Date.now;
  const listeners = new Set<() => void>();
  let queue: DashboardAction[] = [];
  let snapshot: Snapshot = { state: initialState(), now: clock(), frame: 0 };
  let timer: NodeJS.Timeout | undefined;
  let timerDue = Infinity;
  let closed = false;

  const schedule = (delay: number) => {
    if (closed) return;
    const due = clock() + delay;
    if (timer && timerDue <= due) return;
    if (timer) clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(flush, Math.max(0, delay));
    // The dashboard must never be what keeps the process alive.
    timer.unref();
  };

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerDue = Infinity;
    if (closed) return;
    const batch = queue;
    queue = [];
    let state = snapshot.state;
    for (const action of batch) state = reduce(state, action);
    snapshot = { state, now: clock(), frame: snapshot.frame + 1 };
    for (const listener of listeners) listener();
    schedule(isRunning(state) ? intervalMs : idleIntervalMs);
  };

  const enqueue = (action: DashboardAction) => {
    if (closed) return;
    queue.push(action);
    schedule(Math.max(0, snapshot.now + intervalMs - clock()));
  };

  const unsubscribe = source.subscribe((event) => enqueue(event));
  schedule(0);

  return {
    getSnapshot: () => snapshot,
    subscribe(onChange) {
      listeners.add(onChange);
      return () => listeners.delete(onChange);
    },
    dispatch: enqueue,
    flush,
    close() {
      closed = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
      timer = undefined;
      listeners.clear();
    },
  };
}
