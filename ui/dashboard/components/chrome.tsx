// The lines around the services: the header (what runs, where it pushes, watching or paused), the
// latest notice, the log panel, the help screen and the key line at the bottom.
import { Text } from 'ink';
import { clip } from '../format.js';
import type { DashboardState, LogLine, Notice } from '../state.js';
import { Paint } from '../theme.js';

export function Header({ state, compact }: { state: DashboardState; compact: boolean }) {
  const n = state.services.length;
  const registry = state.registry ? `${compact ? '' : 'registry '}${state.registry.address}` : undefined;
  return (
    <Text wrap="truncate-end">
      <Text bold>tsko dev</Text>
      <Paint tone="dim">{` · ${n} service${n === 1 ? '' : 's'}${registry ? ` · ${registry}` : ''} · `}</Paint>
      {state.paused ? <Paint tone="warn" bold>PAUSED (p resumes)</Paint> : <Paint tone="ok">watching</Paint>}
    </Text>
  );
}

export function NoticeLine({ notice }: { notice: Notice }) {
  const tone = notice.level === 'error' ? 'fail' : notice.level === 'warn' ? 'warn' : 'dim';
  return (
    <Text wrap="truncate-end">
      {'  '}
      <Paint tone={tone}>{notice.level === 'info' ? 'ℹ' : '!'}</Paint> {notice.service ? `${notice.service}: ` : ''}
      {notice.message}
      {notice.hint ? <Paint tone="dim">{` (hint: ${notice.hint})`}</Paint> : null}
    </Text>
  );
}

function tag(line: LogLine): string {
  if (line.stream === 'rollout') return 'rollout';
  const rev = line.revision ?? '';
  return rev.replace(/^.*-(?=\d+$)/, '') || rev;
}

export function Logs({ title, lines, rows }: { title: string; lines: LogLine[]; rows: number }) {
  const shown = lines.slice(-rows);
  return (
    <>
      <Text wrap="truncate-end">
        {'  '}
        <Paint tone="dim">{`logs · ${title} · l hides`}</Paint>
      </Text>
      {shown.length === 0 ? (
        <Text wrap="truncate-end">
          {'  '}
          <Paint tone="dim">no log lines yet</Paint>
        </Text>
      ) : null}
      {shown.slice(0, shown.length === 0 ? 0 : rows).map((line, i) => (
        <Text key={i} wrap="truncate-end">
          {'  '}
          <Paint tone={line.stream === 'stderr' ? 'warn' : 'dim'}>{`${tag(line)} │`}</Paint> {line.line}
        </Text>
      ))}
    </>
  );
}

const KEYS: Array<[string, string, string]> = [
  ['r', 'rebuild', 'rebuild every service now (a running build restarts, as on a save)'],
  ['p', 'pause', 'pause or resume watching; saves made meanwhile are built on resume'],
  ['o', 'open', 'open the service URL in a browser (or show it)'],
  ['l', 'logs', "show or hide the current revision's log lines"],
  ['c', 'clear', 'clear the history and warm timings (the cold row stays)'],
  ['?', 'help', 'show or hide this help'],
  ['q', 'quit', 'stop every revision and exit (also Ctrl-C)'],
];

export function Help({ width }: { width: number }) {
  return (
    <>
      <Text bold>Keys</Text>
      {KEYS.map(([key, , text]) => (
        <Text key={key} wrap="truncate-end">
          {'  '}
          <Text bold>{key}</Text>
          {`  ${clip(text, Math.max(10, width - 5))}`}
        </Text>
      ))}
      <Text wrap="truncate-end">
        <Paint tone="dim">{'cold: the first iteration that deployed; warm p50/p90: the ones deployed'}</Paint>
      </Text>
      <Text wrap="truncate-end">
        <Paint tone="dim">{'since (until c clears them); speed-up: cold ÷ warm p50. Esc or ? closes.'}</Paint>
      </Text>
      <Text> </Text>
    </>
  );
}

export function Footer({ compact, message, paused, showLogs }: { compact: boolean; message: string | undefined; paused: boolean; showLogs: boolean }) {
  const keys = compact
    ? 'r p o l c ? q'
    : `r rebuild · p ${paused ? 'resume' : 'pause'} · o open · l ${showLogs ? 'hide logs' : 'logs'} · c clear · ? help · q quit`;
  return (
    <Text wrap="truncate-end">
      <Paint tone="dim">{keys}</Paint>
      {message ? <Text>{`  ${message}`}</Text> : null}
    </Text>
  );
}
