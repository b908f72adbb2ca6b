// How the dashboard writes times, sizes and paths: short, fixed-ish widths so columns line up,
// and the same units as the plain reporter (KB/MB are powers of 1024).
import { isAbsolute, relative, sep } from 'node:path';

/** A stage cell: "9ms", "482ms", "1.2s", "12s", "2m05s". */
export function shortMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, '0')}s`;
}

/** A headline time: "0.62 s", "12.4 s", "2 m 05 s" (Tilt's "Updated in 1.2s", with a space). */
export function seconds(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const secs = Math.round((ms % 60_000) / 1000);
  return `${minutes} m ${String(secs).padStart(2, '0')} s`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

/** "3 s ago", "4 min ago", "2 h ago". */
export function ago(ms: number): string {
  if (ms < 1000) return 'just now';
  if (ms < 60_000) return `${Math.floor(ms / 1000)} s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`;
  return `${Math.floor(ms / 3_600_000)} h ago`;
}

/** A speed-up factor: "25×", "1.4×", "0.8×". */
export function factor(cold: number, warm: number): string {
  if (!(warm > 0) || !(cold > 0)) return '';
  const f = cold / warm;
  return f >= 10 ? `${Math.round(f)}×` : `${f.toFixed(1)}×`;
}

/**
 * A changed file as the user thinks of it: relative to where tsko runs when inside it, else its
 * last two path elements (the package dir and the file) — a full temp path helps nobody.
 */
export function displayPath(file: string, cwd: string | undefined): string {
  if (!isAbsolute(file)) return file;
  if (cwd) {
    const rel = relative(cwd, file);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return rel;
  }
  const parts = file.split(sep).filter(Boolean);
  return parts.length <= 2 ? file : `…${sep}${parts.slice(-2).join(sep)}`;
}

/** Cuts `text` to `width` columns with an ellipsis; the dashboard's text is single-width. */
export function clip(text: string, width: number): string {
  if (width <= 0) return '';
  const chars = [...text];
  if (chars.length <= width) return text;
  return width === 1 ? '…' : `${chars.slice(0, width - 1).join('')}…`;
}

export function padStart(text: string, width: number): string {
  const len = [...text].length;
  return len >= width ? text : ' '.repeat(width - len) + text;
}

export function padEnd(text: string, width: number): string {
  const len = [...text].length;
  return len >= width ? text : text + ' '.repeat(width - len);
}

/**
 * Breaks `text` into lines of at most `width` columns, at a space when one is near the end of the
 * line, else mid-word: nothing is cut, so the `e` view shows a long diagnostic whole.
 */
export function wrapText(text: string, width: number): string[] {
  const w = Math.max(1, width);
  const out: string[] = [];
  let rest = [...text];
  while (rest.length > w) {
    let cut = rest.lastIndexOf(' ', w);
    if (cut < w / 2) cut = w;
    out.push(rest.slice(0, cut).join('').trimEnd());
    rest = rest.slice(cut);
    while (rest[0] === ' ') rest = rest.slice(1);
  }
  out.push(rest.join(''));
  return out;
}

const URL_IN_TEXT = /https?:\/\/\S+/;

/**
 * A message cut to `width` columns without ever cutting a URL in it: the words after the URL go
 * first, then those before it; only a URL wider than the terminal itself is clipped.
 */
export function fitMessage(text: string, width: number): string {
  if ([...text].length <= width) return text;
  const match = URL_IN_TEXT.exec(text);
  if (!match) return clip(text, width);
  const end = match.index + match[0].length;
  const upToUrl = `${text.slice(0, end)}…`;
  if ([...upToUrl].length <= width) return upToUrl;
  return clip(match[0], width);
}

/** Tabs as four spaces: a tab has no fixed width in the cell grid Ink lays out. */
export function untab(text: string): string {
  return text.replaceAll('\t', '    ');
}
