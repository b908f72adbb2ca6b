// Small helpers for the one AbortSignal that travels through every stage of an iteration.
import { TskoError } from './errors.js';

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new TskoError('ABORTED', 'aborted', { cause: signal.reason });
}

/** A signal that never aborts, for one-shot commands that are not cancelled. */
export function neverAbort(): AbortSignal {
  return new AbortController().signal;
}
