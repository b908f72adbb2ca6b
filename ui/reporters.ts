// The reporters map (Vitest's ReportersMap): every command's events go to one of three
// reporters — `plain` timed lines (one-shot commands, and `tsko dev` off a terminal), `json` lines
// on stdout (`--json`), or the Ink `dashboard` (`tsko dev` on a terminal). The bus has already
// redacted every event; a reporter only renders. Ink and React load only for a dashboard, which
// only `tsko dev` on a terminal draws.
import type { TskoEvent } from '../src/events.js';
import type { DashboardControls, DashboardHandle } from './dashboard/index.js';
import { createDashboardStore } from './dashboard/store.js';
import { createJsonReporter } from './json.js';
import { createPlainReporter } from './plain.js';

export type ReporterName = 'plain' | 'json' | 'dashboard';

export interface EventSource {
  subscribe(listener: (event: TskoEvent) => void): () => void;
}

export interface ReporterOptions {
  events: EventSource;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  /** -v: debug lines (requests, layer timings) in the plain reporter. */
  verbose: boolean;
  /** The dashboard's keys and terminal; required for `dashboard`. */
  dashboard?: {
    stdin: NodeJS.ReadStream;
    controls: DashboardControls;
    /** False under NO_COLOR. */
    color: boolean;
    /** Where tsko runs; changed files are shown relative to it. */
    cwd: string;
  };
}

export interface Reporter {
  readonly name: ReporterName;
  /** Draws the dashboard (a no-op for the line reporters). */
  show(): void;
  /** Draws the last frame and gives the terminal back; safe to call twice, or before show(). */
  close(): Promise<void>;
}

/** --json wins; else a terminal on stdout gets the dashboard when the command has one; else plain lines. */
export function pickReporter(options: { json: boolean; tty: boolean; dashboard: boolean }): ReporterName {
  if (options.json) return 'json';
  return options.tty && options.dashboard ? 'dashboard' : 'plain';
}

const lines = (subscribe: () => () => void, name: ReporterName): Reporter => {
  const unsubscribe = subscribe();
  return { name, show: () => undefined, close: async () => void unsubscribe() };
};

export const reporters: Record<ReporterName, (options: ReporterOptions) => Reporter> = {
  plain: (options) => lines(() => options.events.subscribe(createPlainReporter({ write: (line) => options.stderr.write(line + '\n'), verbose: options.verbose })), 'plain'),
  json: (options) => lines(() => options.events.subscribe(createJsonReporter((line) => options.stdout.write(line + '\n'))), 'json'),
  dashboard: (options) => {
    const terminal = options.dashboard;
    if (!terminal) throw new Error('the dashboard reporter needs a terminal');
    // Subscribed at once, so the first frame includes what happened before it is drawn.
    const store = createDashboardStore(options.events);
    // Ink and React start loading now, while the command resolves its config; show() draws once
    // they are there. A failure to load is reported by show(), not here.
    const ink = import('./dashboard/index.js');
    ink.catch(() => undefined);
    let handle: DashboardHandle | undefined;
    let fallback: Reporter | undefined;
    let drawing: Promise<void> | undefined;
    let closed = false;
    return {
      name: 'dashboard',
      show() {
        if (drawing || closed) return;
        drawing = ink
          .then(({ renderDashboard }) => {
            if (closed) return;
            // A terminal that goes away (closed window, killed tmux) fails reads and writes with EIO;
            // unhandled, that would crash tsko before SIGHUP's shutdown has stopped the revisions.
            const ignore = () => undefined;
            options.stdout.on('error', ignore);
            terminal.stdin.on('error', ignore);
            handle = renderDashboard({
              events: store,
              controls: terminal.controls,
              stdout: options.stdout,
              stdin: terminal.stdin,
              stderr: options.stderr,
              color: terminal.color,
              cwd: terminal.cwd,
            });
          })
          .catch((err: unknown) => {
            // Without a dashboard the session still runs; its events go out as plain lines.
            options.stderr.write(`tsko: cannot draw the dashboard (${err instanceof Error ? err.message : String(err)}); printing plain lines\n`);
            store.close();
            if (!closed) fallback = reporters.plain(options);
          });
      },
      async close() {
        closed = true;
        await drawing;
        if (handle) await handle.close();
        else store.close();
        await fallback?.close();
      },
    };
  },
};

export function createReporter(name: ReporterName, options: ReporterOptions): Reporter {
  return reporters[name](options);
}
