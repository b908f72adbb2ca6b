// The dashboard reporter's entry: `renderDashboard` subscribes a store to the bus at once (so no
// event is missed while React mounts), renders the App with Ink on the terminal, and hands back
// `close()` for the CLI's shutdown path, which draws the last state and gives the terminal back.
import { render, renderToString } from 'ink';
import { App, type DashboardControls } from './app.js';
import { DashboardView } from './components/dashboard.js';
import { createDashboardStore, type DashboardStore, type EventSource } from './store.js';

export type { DashboardControls } from './app.js';
export { createDashboardStore } from './store.js';
export { reduce, reduceAll, initialState } from './state.js';

export interface DashboardOptions {
  /** The bus, or a store already subscribed to it (so events before the first frame are kept). */
  events: EventSource | DashboardStore;
  controls: DashboardControls;
  stdout: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  stderr: NodeJS.WriteStream;
  /** False under NO_COLOR. */
  color: boolean;
  /** Where tsko runs; changed files are shown relative to it. */
  cwd?: string;
  /** Shortest time between two frames (default 100 ms: ten a second at most). */
  intervalMs?: number;
}

export interface DashboardHandle {
  store: DashboardStore;
  /**
   * Leaves the full-screen dashboard and prints the final state once on the normal screen (so the
   * timings stay in the scrollback); safe to call twice.
   */
  close(): Promise<void>;
}

export function renderDashboard(options: DashboardOptions): DashboardHandle {
  const store = 'getSnapshot' in options.events ? options.events : createDashboardStore(options.events, { intervalMs: options.intervalMs ?? 100 });
  const instance = render(<App store={store} controls={options.controls} color={options.color} {...(options.cwd ? { cwd: options.cwd } : {})} />, {
    stdout: options.stdout,
    stdin: options.stdin,
    stderr: options.stderr,
    // q and Ctrl-C go through the CLI's own shutdown (which stops the revisions), not Ink's.
    exitOnCtrlC: false,
    // The store already throttles; this caps Ink too, and only changed lines are rewritten.
    maxFps: 10,
    incrementalRendering: true,
    // The CLI only picks the dashboard for a TTY; CI=true must not turn it into a final-frame dump.
    interactive: true,
    // A full-screen app, like htop: a terminal that narrows reflows what is on the primary screen
    // (old frames wrap into rows Ink no longer knows about); the alternate screen is not reflowed.
    alternateScreen: true,
  });
  let closing: Promise<void> | undefined;
  return {
    store,
    close() {
      closing ??= (async () => {
        store.flush();
        instance.unmount();
        store.close();
        await instance.waitUntilExit().catch(() => undefined);
        const { state, now, frame } = store.getSnapshot();
        const columns = options.stdout.columns || 80;
        const summary = renderToString(
          <DashboardView state={state} now={now} frame={frame} columns={columns} rows={Math.max(24, options.stdout.rows || 24)} color={options.color} {...(options.cwd ? { cwd: options.cwd } : {})} />,
          { columns },
        );
        options.stdout.write(summary + '\n');
      })();
      return closing;
    },
  };
}
