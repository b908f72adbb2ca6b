// The timing table: the stages as columns; the current iteration's row (spinner and live elapsed
// on the running stage, final times on the finished ones), then the cold run, the warm median and
// p90, and the speed-up. The same columns for every row, so cold and warm read straight down.
import { Text } from 'ink';
import type { Stage } from '../../../src/events.js';
import { factor, padEnd, padStart, shortMs } from '../format.js';
import type { Plan, TableRow } from '../layout.js';
import type { Iteration, ServiceState } from '../state.js';
import { coldWarm, type Column, type ColumnStats } from '../stats.js';
import type { Tone } from '../describe.js';
import { Paint } from '../theme.js';

export const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

interface CellValue {
  mark?: string;
  tone: Tone;
  text: string;
}

function Cell({ value, width }: { value: CellValue; width: number }) {
  const body = value.mark ? `${value.mark} ${value.text}` : value.text;
  const pad = Math.max(1, width - [...body].length);
  return (
    <>
      {' '.repeat(pad)}
      {value.mark ? (
        <>
          <Paint tone={value.tone}>{value.mark}</Paint> {value.text}
        </>
      ) : (
        <Paint tone={value.tone}>{value.text}</Paint>
      )}
    </>
  );
}

function currentCell(it: Iteration | undefined, column: Column, now: number, spinner: string): CellValue {
  if (!it) return { tone: 'dim', text: '·' };
  if (column === 'total') {
    if (it.end) {
      const ok = it.end.result === 'deployed' || it.end.result === 'unchanged';
      return { mark: ok ? '✓' : it.end.result === 'cancelled' ? '↻' : '✗', tone: ok ? 'ok' : it.end.result === 'cancelled' ? 'warn' : 'fail', text: shortMs(it.end.ms) };
    }
    return { mark: spinner, tone: 'run', text: shortMs(Math.max(0, now - it.startedAt)) };
  }
  const run = it.stages[column as Stage];
  if (!run) return { tone: 'dim', text: it.end ? '–' : '·' };
  if (run.status === 'running') return { mark: spinner, tone: 'run', text: shortMs(Math.max(0, now - run.startedAt)) };
  if (run.status === 'cancelled') return { mark: '↻', tone: 'warn', text: shortMs(run.ms ?? 0) };
  return { mark: run.status === 'ok' ? '✓' : '✗', tone: run.status === 'ok' ? 'ok' : 'fail', text: shortMs(run.ms ?? 0) };
}

function statCell(stats: ColumnStats, row: TableRow): CellValue {
  const none: CellValue = { tone: 'dim', text: '—' };
  switch (row) {
    case 'cold':
      return stats.cold === undefined ? none : { tone: 'plain', text: shortMs(stats.cold) };
    case 'p50':
      return stats.p50 === undefined ? none : { tone: 'plain', text: shortMs(stats.p50) };
    case 'p90':
      return stats.p90 === undefined ? none : { tone: 'plain', text: shortMs(stats.p90) };
    case 'speedup':
      return stats.speedup === undefined || stats.cold === undefined || stats.p50 === undefined
        ? none
        : { tone: stats.speedup >= 1.05 ? 'ok' : 'dim', text: factor(stats.cold, stats.p50) };
  }
}

/** Why there is no speed-up: the first iteration found go's cache warm, or did not say. */
export function firstWasNotCold(service: ServiceState): string {
  const work = service.firstRun?.work;
  if (service.coldness === 'warm' && work) return `go's cache was warm (${work.compiled}/${work.packages} packages compiled)`;
  return 'the first build did not say if it was cold';
}

export function StageTable({ service, current, plan, now, frame }: { service: ServiceState; current: Iteration | undefined; plan: Plan; now: number; frame: number }) {
  const spinner = SPINNER[frame % SPINNER.length] as string;
  const stats = coldWarm(service);
  const warmCount = service.warm.length;
  const labels: Record<TableRow, string> = {
    // "cold" only when go compiled most packages; a first run on a warm cache is just the first.
    cold: service.cold ? `${service.coldness === 'cold' ? 'cold' : 'first'} #${service.cold.iteration}` : 'cold',
    p50: plan.compact ? 'p50' : 'warm p50',
    p90: plan.compact ? 'p90' : 'warm p90',
    speedup: 'speed-up',
  };
  const head = plan.compact ? `n=${warmCount}` : `${warmCount} warm`;
  return (
    <>
      <Text wrap="truncate-end">
        {'  '}
        <Paint tone="dim">
          {padEnd(head, plan.labelWidth)}
          {plan.columns.map((c) => padStart(c, plan.cellWidth)).join('')}
        </Paint>
      </Text>
      <Text wrap="truncate-end">
        {'  '}
        <Text bold>{padEnd(current ? `#${current.iteration}` : 'waiting', plan.labelWidth)}</Text>
        {plan.columns.map((c) => (
          <Cell key={c} value={currentCell(current, c, now, spinner)} width={plan.cellWidth} />
        ))}
      </Text>
      {plan.tableRows.filter((row) => warmCount > 0 || row === 'cold').map((row) =>
        row === 'speedup' && service.coldness !== 'cold' ? (
          <Text key={row} wrap="truncate-end">
            {'  '}
            <Paint tone="dim">{`${padEnd(labels.speedup, plan.labelWidth)}none: ${firstWasNotCold(service)}`}</Paint>
          </Text>
        ) : (
        <Text key={row} wrap="truncate-end">
          {'  '}
          <Paint tone="dim">{padEnd(labels[row], plan.labelWidth)}</Paint>
          {plan.columns.map((c) => (
            <Cell key={c} value={statCell(stats[c], row)} width={plan.cellWidth} />
          ))}
        </Text>
        ),
      )}
      {/* Before the first warm iteration, one line says so instead of three rows of dashes. */}
      {warmCount === 0 && plan.tableRows.some((r) => r !== 'cold') ? (
        <Text wrap="truncate-end">
          {'  '}
          <Paint tone="dim">{`${padEnd('warm', plan.labelWidth)}${service.cold ? (service.coldness === 'cold' ? 'p50, p90 and speed-up after the next deploy' : `after the next deploy; no speed-up (${service.coldness === 'warm' ? "go's cache was warm" : 'first run not known cold'})`) : 'after the first deploy'}`}</Paint>
        </Text>
      ) : null}
    </>
  );
}
