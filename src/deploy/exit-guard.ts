// How a local revision is made to die with tsko when tsko cannot stop it (SIGKILL, an OOM kill).
// Revisions run in their own process group, so nothing the kernel does to tsko reaches them, and
// Node has no prctl(PR_SET_PDEATHSIG). util-linux's `setpriv --pdeathsig KILL -- program` sets it
// and then execs the program: the same pid, the same process group, no process in between, and
// the kernel SIGKILLs the revision the moment tsko's main thread (which forked it) is gone.
// Where setpriv is missing (not Linux, an old util-linux), revisions start directly and tsko's
// own stop and the stray sweep at its next start remain.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';

/** Where util-linux installs setpriv (a fixed list: nothing below config/ reads PATH). */
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

/** What this machine has, probed once per process: every local target (and a reload's) asks. */
let probed: Promise<readonly string[] | undefined> | undefined;

/** The argv prefix that ties a revision's life to tsko's, or undefined when this machine has none. */
export function findExitGuard(): Promise<readonly string[] | undefined> {
  probed ??= probeExitGuard();
  return probed;
}

async function probeExitGuard(): Promise<readonly string[] | undefined> {
  if (process.platform !== 'linux') return undefined;
  for (const path of SETPRIV_PATHS) {
    if (!(await access(path, constants.X_OK).then(() => true, () => false))) continue;
    // An old setpriv lacks --pdeathsig: try it once, exec'ing setpriv itself.
    const works = await new Promise<boolean>((resolve) => {
      execFile(path, ['--pdeathsig', 'KILL', '--', path, '--version'], { timeout: 5000 }, (err) => resolve(!err));
    });
    if (works) return [path, '--pdeathsig', 'KILL', '--'];
  }
  return undefined;
}
