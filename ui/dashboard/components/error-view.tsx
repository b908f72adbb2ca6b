// The `e` view: every current error in full, over the whole screen. The chosen one (↑/↓) comes
// first, then the rest as long as there are rows; long lines wrap instead of being cut, so a
// diagnostic's notes and a `go get …` fix line are there to read and copy.
import { Text } from 'ink';
import type { ErrorDetail } from '../describe.js';
import { untab, wrapText } from '../format.js';
import { Paint } from '../theme.js';

export interface ErrorViewProps {
  errors: ErrorDetail[];
  /** Index of the chosen error (clamped). */
  selected: number;
  width: number;
  /** Rows this view may use. */
  rows: number;
  sessionLog?: string | undefined;
  /** Prefix each headline with its service (more than one service). */
  many: boolean;
}

interface Row {
  text: string;
  tone: 'fail' | 'dim' | 'plain' | 'warn';
  bold?: boolean;
}

/** The rows of one error: its headline, then its lines indented, all wrapped to the width. */
export function errorRows(error: ErrorDetail, width: number, many: boolean): Row[] {
  const head = `${many ? `${error.service}: ` : ''}${error.headline}`;
  const rows: Row[] = wrapText(untab(head), width).map((text) => ({ text, tone: 'fail' as const, bold: true }));
  for (const line of error.lines) for (const text of wrapText(untab(line), width - 4)) rows.push({ text: `    ${text}`, tone: 'plain' });
  return rows;
}

export function clampSelection(selected: number, count: number): number {
  return count === 0 ? 0 : Math.min(Math.max(0, selected), count - 1);
}

export function ErrorView({ errors, selected, width, rows, sessionLog, many }: ErrorViewProps) {
  const chosen = clampSelection(selected, errors.length);
  const title = errors.length === 0 ? 'errors · none: nothing has failed' : `error ${chosen + 1} of ${errors.length} · ↑/↓ choose · e or Esc closes`;
  const body: Row[] = [];
  for (let i = chosen; i < errors.length; i++) {
    if (i > chosen) body.push({ text: '', tone: 'plain' });
    body.push(...errorRows(errors[i] as ErrorDetail, width, many));
  }
  // Title, then the body; the last row says where the rest is (more below, the session log).
  const room = Math.max(1, rows - 2);
  const cut = body.length > room;
  const shown = cut ? body.slice(0, room - 1) : body;
  const after = errors.length - chosen - 1;
  const tail = cut ? `… more below${after > 0 ? ` (↓ for the next of ${after})` : ''}` : sessionLog ? `every event is in ${sessionLog}` : '';
  return (
    <>
      <Text wrap="truncate-end">
        <Paint tone="dim">{title}</Paint>
      </Text>
      {shown.map((row, i) => (
        <Text key={i} wrap="truncate-end">
          <Paint tone={row.tone} {...(row.bold ? { bold: true } : {})}>
            {row.text || ' '}
          </Paint>
        </Text>
      ))}
      {tail ? (
        <Text wrap="truncate-end">
          <Paint tone="dim">{tail}</Paint>
        </Text>
      ) : null}
    </>
  );
}
