// What was cold about a first iteration, in words, for the plain lines and the dashboard alike. A
// first iteration is not cold just because it is first: go's build cache may already hold every
// package (another session, an earlier run), and then it is as warm as any save after it. Only a
// build that compiled most of its packages is called cold, and only a cold one is compared with
// the warm ones as a speed-up.
import type { EventOf } from '../src/events.js';

export interface GoWork {
  compiled: number;
  packages: number;
}

/** The go.build event's counts, when the build reported them. */
export function goWorkOf(event: EventOf<'go.build'>): GoWork | undefined {
  return event.compiled !== undefined && event.packages !== undefined ? { compiled: event.compiled, packages: event.packages } : undefined;
}

/** Cold: go compiled more than half of the packages (an empty or foreign build cache). */
export function isColdBuild(work: GoWork): boolean {
  return work.packages > 0 && work.compiled * 2 > work.packages;
}

/**
 * What a first deployed run found, for its history row, longest first (the row takes the longest
 * that fits): `cold: empty Go cache, empty registry`, `first: warm Go cache, registry had 2 of 3
 * blobs`, then without the registry, then one word (`first` unless go compiled most packages).
 */
export function describeFirstRun(work: GoWork | undefined, push: { blobsPushed: number; blobsSkipped: number } | undefined): string[] {
  const cold = work !== undefined && isColdBuild(work);
  const head = cold ? 'cold' : 'first';
  const go = work ? (cold ? 'empty Go cache' : 'warm Go cache') : undefined;
  let registry: string | undefined;
  if (push) {
    const all = push.blobsPushed + push.blobsSkipped;
    if (push.blobsSkipped === 0 && push.blobsPushed > 0) registry = 'empty registry';
    else if (all > 0) registry = `registry had ${push.blobsSkipped} of ${all} blobs`;
  }
  const parts = [go, registry].filter((p): p is string => p !== undefined);
  const variants = [`${head}: ${parts.join(', ')}`, ...(go ? [`${head}: ${go}`] : []), cold ? 'cold' : work ? 'first, warm' : 'first'];
  return parts.length > 0 ? variants : [head];
}

/** "cold Go cache: compiled 185 of 185 packages" / "warm Go cache: compiled 1 of 185 packages". */
export function describeGoWork(work: GoWork): string {
  return `${isColdBuild(work) ? 'cold' : 'warm'} Go cache: compiled ${work.compiled} of ${work.packages} package${work.packages === 1 ? '' : 's'}`;
}
