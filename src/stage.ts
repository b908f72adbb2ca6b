// A stage of an iteration (build, layer, push, deploy, ready) as one call: `stage.start` before
// the work, `stage.end` after it with the work's real outcome — ok only when it resolved,
// `cancelled` when it was stopped by its signal — and the time it took. Every stage is timed
// here, so no stage can report success for work that failed.
import { isAbortError } from './errors.js';
import type { EventBus, Stage } from './events.js';

export interface StageFields {
  importPath?: string;
  platform?: string;
}

export async function stage<T>(events: EventBus, name: Stage, work: () => Promise<T>, fields: StageFields = {}, signal?: AbortSignal): Promise<T> {
  events.emit({ type: 'stage.start', stage: name, ...fields });
  const started = performance.now();
  try {
    const value = await work();
    events.emit({ type: 'stage.end', stage: name, ...fields, ms: performance.now() - started, ok: true });
    return value;
  } catch (err) {
    const cancelled = signal?.aborted === true || isAbortError(err);
    events.emit({ type: 'stage.end', stage: name, ...fields, ms: performance.now() - started, ok: false, ...(cancelled ? { cancelled: true } : {}) });
    throw err;
  }
}
