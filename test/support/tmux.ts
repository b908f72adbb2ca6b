// Drives a real terminal for the dashboard's end-to-end tests: a private tmux server (its own
// socket, so no one's sessions are touched), one detached session of a fixed size running a
// command, its screen read back with capture-pane, keys sent with send-keys.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TmuxSession {
  /** Runs tmux with this server's socket. */
  tmux(...args: string[]): string;
  /** The pane's screen now. */
  pane(): string;
  /** Polls the pane (bounded) until `check` holds; returns that screen, else fails saying what it showed. */
  waitPane(check: (screen: string) => boolean, what: string, timeoutMs?: number, everyMs?: number): Promise<string>;
  sendKeys(...keys: string[]): void;
  /** The pid of the pane's shell. */
  shellPid(): number;
  /** Stops the tmux server and everything in it; safe to call twice. */
  kill(): void;
}

export interface TmuxStart {
  /** Names the private socket (with the test's pid). */
  name: string;
  columns: number;
  rows: number;
  cwd: string;
  env: Record<string, string>;
  /** A shell command line. */
  command: string;
}

export function startTmux(options: TmuxStart): TmuxSession {
  const socket = `${options.name}-${process.pid}`;
  const session = 'main';
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
  tmux(
    'new-session', '-d', '-s', session, '-x', String(options.columns), '-y', String(options.rows), '-c', options.cwd,
    ...Object.entries(options.env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    options.command,
  );
  const pane = () => tmux('capture-pane', '-p', '-t', session);
  return {
    tmux,
    pane,
    async waitPane(check, what, timeoutMs = 60_000, everyMs = 100) {
      const deadline = Date.now() + timeoutMs;
      let screen = '';
      while (Date.now() < deadline) {
        screen = pane();
        if (check(screen)) return screen;
        await sleep(everyMs);
      }
      assert.fail(`the pane never showed ${what} within ${timeoutMs} ms; it shows:\n${screen}`);
    },
    sendKeys: (...keys) => void tmux('send-keys', '-t', session, ...keys),
    shellPid: () => Number(tmux('list-panes', '-t', session, '-F', '#{pane_pid}').trim()),
    kill() {
      try {
        tmux('kill-server');
      } catch {
        // Already gone (or never started).
      }
    },
  };
}

/** A shell-quoted command line. */
export function shellLine(args: string[]): string {
  return args.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
}
