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

/** "cold Go cache: compiled 185 of 185 packages" / "warm Go cache: compiled 1 of 185 packages". */
export function describeGoWork(work: GoWork): string {
  return `${isColdBuild(work) ? 'cold' : 'warm'} Go cache: compiled ${work.compiled} of ${work.packages} package${work.packages === 1 ? '' : 's'}`;
}
