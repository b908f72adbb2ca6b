// The lines around the services: the header (what runs, where it pushes, watching or paused), the
// latest notice, the log panel, the help screen and the key line at the bottom.
import { Text } from 'ink';
import { basename } from 'node:path';
import { clip, fitMessage, untab } from '../format.js';
import type { DashboardState, LogLine, Notice } from '../state.js';
import { Paint } from '../theme.js';

/**
 * The header's log part: the whole path when it fits, else the file's name (unique per session;
 * `?` and the exit line give the whole path). The registry's address gives way to it first.
 */
export function headerParts(state: DashboardState, compact: boolean, width: number): { middle: string; log?: string } {
  const n = state.services.length;
  const services = `${n} service${n === 1 ? '' : 's'}`;
  const registry = state.registry ? `${compact ? '' : 'registry '}${state.registry.address}` : undefined;
  const status = state.paused ? 'PAUSED (p resumes)' : 'watching';
  const fits = (middle: string, log: string | undefined) => `tsko dev · ${middle} · ${status}${log ? ` · log ${log}` : ''}`.length <= width;
  const path = state.sessionLog;
  const withRegistry = registry ? `${services} · ${registry}` : services;
  if (!path) return { middle: withRegistry };
  for (const log of [path, `…/${basename(path)}`]) {
    if (fits(withRegistry, log)) return { middle: withRegistry, log };
    if (fits(services, log)) return { middle: services, log };
  }
  return { middle: services, log: `…/${basename(path)}` };
}

export function Header({ state, compact, width }: { state: DashboardState; compact: boolean; width: number }) {
  const { middle, log } = headerParts(state, compact, width);
  return (
    <Text wrap="truncate-end">
      <Text bold>tsko dev</Text>
      <Paint tone="dim">{` · ${middle} · `}</Paint>
      {state.paused ? <Paint tone="warn" bold>PAUSED (p resumes)</Paint> : <Paint tone="ok">watching</Paint>}
      {log ? <Paint tone="dim">{` · log ${log}`}</Paint> : null}
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
          <Paint tone={line.stream === 'stderr' ? 'warn' : 'dim'}>{`${tag(line)} │`}</Paint> {untab(line.line)}
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
  ['e', 'error', 'show every current error in full (↑/↓ choose one; e or Esc closes)'],
  ['c', 'clear', 'clear the history and warm timings (the cold row stays)'],
  ['?', 'help', 'show or hide this help'],
  ['q', 'quit', 'stop every revision and exit (also Ctrl-C)'],
];

export function Help({ width, sessionLog }: { width: number; sessionLog?: string | undefined }) {
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
        <Paint tone="dim">{'cold: the first deploy, when go compiled most packages (else "first");'}</Paint>
      </Text>
      <Text wrap="truncate-end">
        <Paint tone="dim">{'warm p50/p90: the deploys since (until c clears them); speed-up: cold ÷ warm'}</Paint>
      </Text>
      <Text wrap="truncate-end">
        <Paint tone="dim">{'p50, shown only after a cold first run. Esc or ? closes.'}</Paint>
      </Text>
      {sessionLog ? (
        <Text wrap="truncate-end">
          <Paint tone="dim">{'session log: '}</Paint>
          {sessionLog}
        </Text>
      ) : null}
      <Text> </Text>
    </>
  );
}

export function Footer({ compact, message, paused, showLogs, width }: { compact: boolean; message: string | undefined; paused: boolean; showLogs: boolean; width: number }) {
  const long = `r rebuild · p ${paused ? 'resume' : 'pause'} · o open · l ${showLogs ? 'hide logs' : 'logs'} · e error · c clear · ? help · q quit`;
  const short = 'r p o l e c ? q';
  // A URL in a message (what `o` did) matters more than the key names: they shrink to let it fit,
  // then the message's words go, never the URL. Other messages are cut at the end.
  const urlCrowded = message !== undefined && /https?:\/\//.test(message) && long.length + 2 + message.length > width;
  const keys = compact || urlCrowded ? short : long;
  return (
    <Text wrap="truncate-end">
      <Paint tone="dim">{keys}</Paint>
      {message ? <Text>{`  ${fitMessage(message, Math.max(1, width - keys.length - 2))}`}</Text> : null}
    </Text>
  );
}
