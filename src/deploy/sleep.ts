// The pause between status polls of a remote rollout: ends early, as an ABORTED error, when the
// iteration's signal aborts (a newer save, or shutdown).
import { TskoError } from '../errors.js';

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new TskoError('ABORTED', 'aborted', { cause: signal.reason }));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new TskoError('ABORTED', 'aborted', { cause: signal.reason }));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
