// The connected dashboard: the store's snapshots, the terminal's size (it follows resizes) and the
// keys. Keys only call the controls the CLI passed in; what they change comes back as events.
import { useEffect, useRef, useState } from 'react';
import { useInput, useStdin } from 'ink';
import { DashboardView } from './components/dashboard.js';
import { clampSelection } from './components/error-view.js';
import { errorDetails } from './describe.js';
import type { DashboardStore } from './store.js';
import { useEvents } from './use-events.js';
import { useTerminalSize } from './use-terminal-size.js';

export interface DashboardControls {
  /** Rebuild every service now (`r`). */
  rebuild(): void;
  /** Pause or resume watching (`p`). */
  setPaused(paused: boolean): void;
  /** Open a URL for the user (`o`); resolves with what to tell them. Must not reject. */
  openUrl(url: string): Promise<string>;
  /** Shut down the way SIGINT does (`q`, Ctrl-C). */
  quit(how: 'key' | 'ctrl-c'): void;
}

export interface AppProps {
  store: DashboardStore;
  controls: DashboardControls;
  cwd?: string;
  color?: boolean;
  /** Fixed size (tests); otherwise the terminal's, following resizes. */
  size?: { columns: number; rows: number };
}

const MESSAGE_MS = 6000;

export function App({ store, controls, cwd, color, size }: AppProps) {
  const snapshot = useEvents(store);
  const terminal = useTerminalSize(size);
  const { isRawModeSupported } = useStdin();
  const [showLogs, setShowLogs] = useState(false);
  const [showHelp, setShowHelp] = useState(false);
  const [showErrors, setShowErrors] = useState(false);
  const [selectedError, setSelectedError] = useState(0);
  const [message, setMessage] = useState<string | undefined>(undefined);
  // What the user last asked for: the snapshot's `paused` lags by up to one frame.
  const wantPaused = useRef(snapshot.state.paused);
  useEffect(() => {
    wantPaused.current = snapshot.state.paused;
  }, [snapshot.state.paused]);
  useEffect(() => {
    if (!message) return;
    const timer = setTimeout(() => setMessage(undefined), MESSAGE_MS);
    timer.unref();
    return () => clearTimeout(timer);
  }, [message]);

  useInput(
    (input, key) => {
      if (key.ctrl && input === 'c') {
        controls.quit('ctrl-c');
        return;
      }
      if (key.escape && showHelp) {
        setShowHelp(false);
        return;
      }
      if (key.escape && showErrors) {
        setShowErrors(false);
        return;
      }
      if (showErrors && (key.upArrow || key.downArrow || input === 'k' || input === 'j')) {
        const count = errorDetails(snapshot.state).length;
        const step = key.upArrow || input === 'k' ? -1 : 1;
        setSelectedError((i) => clampSelection(clampSelection(i, count) + step, count));
        return;
      }
      switch (input) {
        case 'r':
          controls.rebuild();
          setMessage('rebuilding…');
          break;
        case 'p':
          wantPaused.current = !wantPaused.current;
          controls.setPaused(wantPaused.current);
          setMessage(wantPaused.current ? 'watching paused: saves are queued' : 'watching resumed');
          break;
        case 'o': {
          const url = snapshot.state.services.map((s) => s.serving?.url).find(Boolean);
          if (!url) {
            setMessage('no URL yet: nothing is serving');
            break;
          }
          controls.openUrl(url).then(setMessage, () => setMessage(url));
          break;
        }
        case 'l':
          setShowLogs((v) => !v);
          break;
        case 'e':
          setShowHelp(false);
          setShowErrors((v) => !v);
          break;
        case 'c':
          store.dispatch({ type: 'dashboard.clear-history' });
          setMessage('history cleared');
          break;
        case '?':
          setShowErrors(false);
          setShowHelp((v) => !v);
          break;
        case 'q':
          controls.quit('key');
          break;
        default:
          break;
      }
    },
    { isActive: isRawModeSupported === true },
  );

  return (
    <DashboardView
      state={snapshot.state}
      now={snapshot.now}
      frame={snapshot.frame}
      columns={terminal.columns}
      rows={terminal.rows}
      fill
      showLogs={showLogs}
      showHelp={showHelp}
      showErrors={showErrors}
      selectedError={selectedError}
      {...(message ? { message } : {})}
      {...(cwd ? { cwd } : {})}
      {...(color !== undefined ? { color } : {})}
    />
  );
}
