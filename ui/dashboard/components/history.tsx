// The last iterations, newest last: a bar of each one's save → serving time (scaled to the warm
// ones, so a slow cold start does not flatten them; longer bars end in ▸), its time, result and
// revision. The title carries a sparkline of every iteration the history still holds.
import { Text } from 'ink';
import type { IterationResult } from '../../../src/events.js';
import type { Tone } from '../describe.js';
import { displayPath, padEnd, padStart, seconds } from '../format.js';
import { describeFirstRun } from '../../first-iteration.js';
import type { HistoryEntry, ServiceState } from '../state.js';
import { Paint } from '../theme.js';

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

export const RESULT_MARK: Record<IterationResult, { mark: string; tone: Tone; word: string }> = {
  deployed: { mark: '✓', tone: 'ok', word: 'deployed' },
  unchanged: { mark: '=', tone: 'dim', word: 'unchanged' },
  cancelled: { mark: '↻', tone: 'warn', word: 'cancelled' },
  'build-failed': { mark: '✗', tone: 'fail', word: 'build failed' },
  'push-failed': { mark: '✗', tone: 'fail', word: 'push failed' },
  'deploy-failed': { mark: '✗', tone: 'fail', word: 'deploy failed' },
};

export function bar(ms: number, scale: number, width: number): string {
  if (width <= 0) return '';
  if (!(scale > 0)) return '';
  const over = ms > scale * 1.0001;
  const eighths = Math.max(1, Math.round((Math.min(ms, scale) / scale) * width * 8));
  let text = '█'.repeat(Math.floor(eighths / 8)) + (EIGHTHS[eighths % 8] ?? '');
  if (over) text = '█'.repeat(width - 1) + '▸';
  return text.slice(0, width);
}

export function sparkline(entries: readonly HistoryEntry[]): Array<{ char: string; tone: Tone }> {
  if (entries.length === 0) return [];
  const logs = entries.map((e) => Math.log1p(e.ms));
  const min = Math.min(...logs);
  const max = Math.max(...logs);
  return entries.map((e, i) => ({
    char: SPARKS[max - min < 1e-9 ? 0 : Math.round((((logs[i] as number) - min) / (max - min)) * (SPARKS.length - 1))] as string,
    tone: RESULT_MARK[e.result].tone,
  }));
}

/** The bar scale: the longest shown iteration other than the cold one (when there are others). */
export function barScale(entries: readonly HistoryEntry[], coldIteration: number | undefined): number {
  const warm = entries.filter((e) => e.iteration !== coldIteration);
  const pool = warm.length > 0 ? warm : entries;
  return Math.max(1, ...pool.map((e) => e.ms));
}

/** The history row's columns before its last text: indent, number, time, mark, word. */
const ROW_FIXED = 2 + 5 + 9 + 2 + 2 + 14;

/** The longest description of the first run that fits `room` columns (the shortest otherwise). */
function firstRunText(service: ServiceState, room: number): string {
  const variants = describeFirstRun(service.firstRun?.work, service.firstRun);
  return variants.find((v) => v.length <= room) ?? (variants.at(-1) as string);
}

export function History({ service, rows, barWidth, width, cwd }: { service: ServiceState; rows: number; barWidth: number; width: number; cwd: string | undefined }) {
  const all = service.history;
  if (all.length === 0) return null;
  const shown = rows > 0 ? all.slice(-rows) : [];
  const scale = barScale(shown, service.cold?.iteration);
  const sparkRoom = Math.max(0, width - 28);
  const spark = sparkline(all.slice(-sparkRoom));
  return (
    <>
      <Text wrap="truncate-end">
        {'  '}
        <Paint tone="dim">{`history · ${all.length} iteration${all.length === 1 ? '' : 's'}  `}</Paint>
        {spark.map((s, i) => (
          <Paint key={i} tone={s.tone}>
            {s.char}
          </Paint>
        ))}
      </Text>
      {shown.map((entry) => {
        const mark = RESULT_MARK[entry.result];
        const cold = entry.iteration === service.cold?.iteration;
        const what = entry.revision ?? entry.trigger.map((f) => (f === 'start' ? '(first build)' : f === 'r' ? '(rebuild key)' : displayPath(f, cwd))).join(', ');
        return (
          <Text key={entry.iteration} wrap="truncate-end">
            {'  '}
            {padEnd(`#${entry.iteration}`, 5)}
            <Paint tone={mark.tone}>{padEnd(bar(entry.ms, scale, barWidth), barWidth)}</Paint>
            {padStart(seconds(entry.ms), 9)}
            {'  '}
            <Paint tone={mark.tone}>{mark.mark}</Paint> {padEnd(mark.word, 14)}
            <Paint tone="dim">{`${what}${cold ? ` (${firstRunText(service, width - ROW_FIXED - barWidth - what.length - 3)})` : ''}`}</Paint>
          </Text>
        );
      })}
    </>
  );
}
