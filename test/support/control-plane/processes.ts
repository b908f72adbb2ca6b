// Child processes of the test control plane (etcd, kube-apiserver, kube-controller-manager): their
// output kept in a bounded buffer for failure messages, stopped with SIGTERM then SIGKILL, killed
// when the test process exits, and each watched by a tiny detached `sh` that kills it if the test
// process dies without running exit handlers (SIGKILL, a crashed runner): etcd is never left behind.
import { type ChildProcess, spawn } from 'node:child_process';

export interface ControlPlaneProcess {
  name: string;
  pid: number;
  /** The last 64 KiB the process wrote to stdout and stderr. */
  output(): string;
  exited(): boolean;
  /** Resolves when the process has exited. */
  exit: Promise<void>;
  stop(): Promise<void>;
}

const OUTPUT_LIMIT = 64 * 1024;

// One exit handler for all children (not one listener each: many control planes in one file).
const live = new Set<ChildProcess>();
let exitHandlerInstalled = false;

function killAllAtExit(): void {
  for (const child of live) child.kill('SIGKILL');
}

export function startProcess(name: string, file: string, args: string[], env?: NodeJS.ProcessEnv): ControlPlaneProcess {
  const child: ChildProcess = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  let output = '';
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let hasExited = false;
  let watchdog: ChildProcess | undefined;
  const exit = new Promise<void>((resolve) => {
    const done = (): void => {
      hasExited = true;
      watchdog?.kill('SIGKILL');
      live.delete(child);
      resolve();
    };
    child.once('exit', done);
    child.once('error', (err) => {
      output += `\nspawn error: ${err.message}`;
      done();
    });
  });
  live.add(child);
  if (!exitHandlerInstalled) {
    process.on('exit', killAllAtExit);
    exitHandlerInstalled = true;
  }
  if (child.pid !== undefined) {
    // Polls for the test process once a second; kills the child when it is gone. Killed itself
    // when the child exits, so it never signals a reused pid.
    watchdog = spawn('sh', ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null', 'sh', String(process.pid), String(child.pid)], {
      detached: true,
      stdio: 'ignore',
    });
    watchdog.unref();
  }
  return {
    name,
    pid: child.pid ?? -1,
    output: () => output,
    exited: () => hasExited,
    exit,
    async stop() {
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}
