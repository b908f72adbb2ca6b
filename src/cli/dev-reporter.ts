// Which reporter `tsko dev` uses: --json → JSON lines on stdout; else a terminal on stdout → the
// live dashboard; else (piped, redirected, CI logs) plain timed lines on stderr, unasked. The
// dashboard's store subscribes at once, so the first frame includes what happened before it.
import type { EventBus, TskoEvent } from '../events.js';
import { redact } from '../redact.js';
import { createJsonReporter } from '../../ui/json.js';
import { createPlainReporter } from '../../ui/plain.js';
import { createDashboardStore, renderDashboard, type DashboardControls, type DashboardHandle } from '../../ui/dashboard/index.js';
import { openUrl } from './open-url.js';

/** The plain reporter redacts each line; the dashboard gets each event's strings redacted. */
function scrub(event: TskoEvent): TskoEvent | undefined {
  try {
    return JSON.parse(redact(JSON.stringify(event))) as TskoEvent;
  } catch {
    return undefined;
  }
}

export interface DevReporterOptions {
  json: boolean;
  verbose: boolean;
  events: EventBus;
  controls: Omit<DashboardControls, 'openUrl'>;
}

export interface DevReporter {
  kind: 'json' | 'plain' | 'dashboard';
  /** Draws the dashboard (a no-op for the line reporters). */
  show(): void;
  /** Draws the last frame and gives the terminal back; safe to call twice, or before show(). */
  close(): Promise<void>;
}

export function createDevReporter(options: DevReporterOptions): DevReporter {
  const { events } = options;
  const none = { show: () => undefined, close: async () => undefined };
  if (options.json) {
    events.subscribe(createJsonReporter((line) => process.stdout.write(line + '\n')));
    return { kind: 'json', ...none };
  }
  if (!process.stdout.isTTY) {
    events.subscribe(createPlainReporter({ write: (line) => process.stderr.write(redact(line) + '\n'), verbose: options.verbose }));
    return { kind: 'plain', ...none };
  }
  const store = createDashboardStore(events, { prepare: scrub });
  let handle: DashboardHandle | undefined;
  let closed = false;
  return {
    kind: 'dashboard',
    show() {
      if (handle || closed) return;
      // A terminal that goes away (closed window, killed tmux) fails reads and writes with EIO;
      // unhandled, that would crash tsko before SIGHUP's shutdown has stopped the revisions.
      const ignore = () => undefined;
      process.stdout.on('error', ignore);
      process.stdin.on('error', ignore);
      handle = renderDashboard({
        events: store,
        controls: { ...options.controls, openUrl: (url) => openUrl(url, { path: process.env.PATH, platform: process.platform }) },
        stdout: process.stdout,
        stdin: process.stdin,
        stderr: process.stderr,
        // https://no-color.org: set and not empty.
        color: !process.env.NO_COLOR,
        cwd: process.cwd(),
      });
    },
    async close() {
      closed = true;
      if (handle) await handle.close();
      else store.close();
    },
  };
}
