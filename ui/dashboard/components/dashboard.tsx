// The whole screen as a function of its props: the model, the clock, the terminal size and the
// view toggles. No hooks that fetch or subscribe: the connected App feeds it, tests render it.
import { Box, Text } from 'ink';
import { errorDetails, errorLines } from '../describe.js';
import { planLayout } from '../layout.js';
import type { DashboardState, LogLine, Notice } from '../state.js';
import { ThemeContext } from '../theme.js';
import { Footer, Header, Help, Logs, NoticeLine } from './chrome.js';
import { ErrorView } from './error-view.js';
import { ServiceBlock } from './service.js';

export interface DashboardViewProps {
  state: DashboardState;
  now: number;
  frame: number;
  columns: number;
  rows: number;
  showLogs?: boolean;
  showHelp?: boolean;
  /** The `e` view: every current error in full, the chosen one first. */
  showErrors?: boolean;
  selectedError?: number;
  /** A transient line from the last key (e.g. "opened http://…"). */
  message?: string;
  /** Where tsko runs: changed files are shown relative to it. */
  cwd?: string;
  color?: boolean;
  /**
   * Exactly `rows` tall, the key line pinned to the bottom (the live, full-screen dashboard): Ink
   * then owns every row, so a resize never leaves pieces of an older frame behind.
   */
  fill?: boolean;
}

/** A notice stays on screen for a minute; an error until the history is cleared. */
const NOTICE_MS = 60_000;

function currentNotice(notices: Notice[], now: number): Notice | undefined {
  const last = notices.at(-1);
  if (!last) return undefined;
  return last.level === 'error' || now - last.time < NOTICE_MS ? last : undefined;
}

/**
 * The log panel's lines: per service, the serving revision's and those of any newer revision that
 * failed to start (its last words are why), plus rollout messages; older revisions are gone.
 */
export function currentLogs(state: DashboardState): { title: string; lines: LogLine[] } {
  const many = state.services.length > 1;
  const lines = state.services
    .flatMap((s) => {
      const serving = s.serving;
      const current = serving ? s.logs.filter((l) => l.revision === undefined || l.revision === serving.revision || l.time > serving.since) : s.logs;
      return current.map((l) => (many ? { ...l, line: `${s.name}: ${l.line}` } : l));
    })
    .sort((a, b) => a.time - b.time);
  const serving = state.services.map((s) => s.serving?.revision).filter(Boolean);
  return { title: serving.length ? serving.join(', ') : 'no revision yet', lines };
}

export function DashboardView(props: DashboardViewProps) {
  const { state, now, frame, columns, rows } = props;
  const width = Math.max(20, columns);
  const notice = currentNotice(state.notices, now);
  const logs = currentLogs(state);
  const plan = planLayout({
    columns: width,
    rows,
    services: state.services.map((s) => ({ errorLines: errorLines(s, now).length, historyLength: s.history.length })),
    showLogs: Boolean(props.showLogs),
    logLines: logs.lines.length,
    notice: notice !== undefined,
  });
  return (
    <ThemeContext.Provider value={{ color: props.color ?? true }}>
      {/* One column fixed to the terminal's width; every line truncates, so nothing wraps. */}
      <Box flexDirection="column" width={width} {...(props.fill ? { height: Math.max(1, rows), overflow: 'hidden' as const } : {})}>
        <Box flexDirection="column" flexGrow={1} flexShrink={1} overflow="hidden">
          <Header state={state} compact={plan.compact} width={width} />
          {plan.gaps ? <Text> </Text> : null}
          {props.showHelp ? (
            <Help width={width} sessionLog={state.sessionLog} />
          ) : props.showErrors ? (
            <ErrorView
              errors={errorDetails(state)}
              selected={props.selectedError ?? 0}
              width={width}
              rows={Math.max(3, rows - 2 - (plan.gaps ? 1 : 0))}
              sessionLog={state.sessionLog}
              many={state.services.length > 1}
            />
          ) : (
            <>
              {state.services.length === 0 ? <Text dimColor>starting…</Text> : null}
              {state.services.map((service) => (
                <ServiceBlock key={service.name} service={service} plan={plan} now={now} frame={frame} width={width} cwd={props.cwd} />
              ))}
              {plan.logRows > 0 ? <Logs title={logs.title} lines={logs.lines} rows={plan.logRows} /> : null}
              {plan.notice && notice ? <NoticeLine notice={notice} /> : null}
            </>
          )}
        </Box>
        <Box flexShrink={0}>
          <Footer compact={plan.compact} message={props.message} paused={state.paused} showLogs={Boolean(props.showLogs)} width={width} />
        </Box>
      </Box>
    </ThemeContext.Provider>
  );
}
