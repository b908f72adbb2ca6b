// Notices that whatever started `tsko dev` has died, so the daemon does not outlive it. A parent
// killed with SIGKILL (an `npx` wrapper, a test runner, a closed IDE) sends nothing; the kernel only
// re-parents its children, which is what this watches. `npx tsko dev` / `npm exec` / `npm run`
// start tsko through `sh -c '…'`, and that shell outlives a SIGKILLed npm, so tsko's own parent
// never changes: the watch goes up through such `-c` shells to the process that started them.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** How often the chain of parents is looked at. */
const PARENT_CHECK_MS = 500;
/** Wrapper shells looked through; more is not a wrapper but a tangle. */
const MAX_WRAPPERS = 3;
const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh', 'ash', 'ksh']);

/** The parent pid of `pid` from /proc, or undefined when it is gone (or there is no /proc). */
export function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state, ppid, …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // a zombie is dead, only not yet reaped
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

/** Whether `pid` is a non-interactive shell running a command string (`sh -c '…'`). */
function isWrapperShell(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return SHELLS.has(basename(argv[0] ?? '').replace(/^-/, '')) && argv[1] === '-c';
  } catch {
    return false;
  }
}

/**
 * The processes whose death ends tsko, nearest first: its parent, and above each wrapper shell
 * the process that started it. Each must stay the parent of the one before it.
 */
export function watchedAncestors(self: number, parent: number): number[] {
  const chain = [self, parent];
  for (let i = 0; i < MAX_WRAPPERS; i++) {
    const last = chain[chain.length - 1] as number;
    if (!isWrapperShell(last)) break;
    const above = parentOf(last);
    if (above === undefined || above <= 1) break;
    chain.push(above);
  }
  return chain.slice(1);
}

/**
 * Calls `onDeath` once the process that started this one (or, through wrapper shells, the one
 * that started them) is gone. Started already orphaned (a container's init, a detached launch),
 * there is nothing to watch.
 */
export function onParentDeath(onDeath: () => void, intervalMs = PARENT_CHECK_MS): void {
  const parent = process.ppid;
  if (parent <= 1) return;
  const chain = watchedAncestors(process.pid, parent);
  const timer = setInterval(() => {
    let intact = process.ppid === parent;
    for (let i = 0; intact && i + 1 < chain.length; i++) intact = parentOf(chain[i] as number) === chain[i + 1];
    if (intact) return;
    clearInterval(timer);
    onDeath();
  }, intervalMs);
  timer.unref();
}
