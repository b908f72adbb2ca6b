// The one AbortSignal that travels through every stage of an iteration, and the one way to turn
// its abort into an error: ABORTED, carrying the signal's reason (a newer save, a config change,
// shutdown), so a cancelled stage is reported as cancelled wherever it was cut short.
import { TskoError } from './errors.js';

/** The ABORTED error for `signal`'s abort; `message` says what was stopped, when that helps. */
export function abortError(signal: AbortSignal | undefined, message = 'aborted'): TskoError {
  const reason: unknown = signal?.reason;
  return new TskoError('ABORTED', message, reason === undefined ? {} : { cause: reason });
}

export function throwIfAborted(signal: AbortSignal | undefined, message?: string): void {
  if (signal?.aborted) throw abortError(signal, message);
}

/** Waits for `promise`, but rejects with ABORTED as soon as `signal` aborts (the work goes on unobserved). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Resolves after `ms`, or rejects with ABORTED as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A signal that aborts when any of `signals` does. Unlike AbortSignal.any it detaches from the
 * long-lived ones when disposed, so a per-call link leaves nothing behind on them.
 */
export function linkedSignal(signals: readonly AbortSignal[]): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const detach: Array<() => void> = [];
  for (const source of signals) {
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const onAbort = () => controller.abort(source.reason);
    source.addEventListener('abort', onAbort, { once: true });
    detach.push(() => source.removeEventListener('abort', onAbort));
  }
  return { signal: controller.signal, dispose: () => detach.forEach((fn) => fn()) };
}
