// Runs `tsko dev --json` as a child process and reads its event stream, so tests can wait for
// events and look at the process tree it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TskoEvent } from '../../src/events.js';
import { repoRoot } from './tsko-cli.js';

export interface DevProcess {
  child: ChildProcess;
  events: TskoEvent[];
  stderr(): string;
  /** Resolves with the first event (at or after index `from`) matching `match`. */
  waitFor(match: (event: TskoEvent) => boolean, options?: { timeoutMs?: number; from?: number }): Promise<TskoEvent>;
  /** Resolves with the exit code (or signal name), bounded. */
  exited(timeoutMs: number): Promise<number | string>;
}

/**
 * `command` runs another tsko than the checkout's (`npx tsko` in a project that installed it):
 * the file and the arguments before `dev`.
 */
export function startDev(args: string[], options: { cwd: string; env: Record<string, string | undefined>; command?: { file: string; args: string[] } }): DevProcess {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...options.env })) if (value !== undefined) env[key] = value;
  const command = options.command ?? { file: join(repoRoot, 'node_modules/.bin/node'), args: [join(repoRoot, 'bin/tsko.js')] };
  const child = spawn(command.file, [...command.args, 'dev', '--json', ...args], {
    cwd: options.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: TskoEvent[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim()) events.push(JSON.parse(line) as TskoEvent);
    }
    for (const wake of waiters) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exit = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));

  return {
    child,
    events,
    stderr: () => stderr,
    waitFor(match, { timeoutMs = 60_000, from = 0 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.slice(from).find(match);
          if (found) {
            cleanup();
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching event within ${timeoutMs} ms; events:\n${events.map((e) => JSON.stringify(e)).join('\n')}\nstderr:\n${stderr}`));
        }, timeoutMs);
        const onExit = () => {
          cleanup();
          reject(new Error(`tsko dev exited before the event; stderr:\n${stderr}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', onExit);
        };
        waiters.add(check);
        child.once('exit', onExit);
        check();
      });
    },
    exited(timeoutMs) {
      return Promise.race([exit, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs))]);
    },
  };
}

/** Every live descendant of `pid`, from /proc. */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift() as number;
    for (const [child, parent] of parents) {
      if (parent === current) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat); // a zombie is dead, only not yet reaped
  } catch {
    return false;
  }
}
