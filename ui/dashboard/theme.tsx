// Colours: only the terminal's own named colours (which light and dark themes both tune), on
// marks and short words, never on the body text, and none at all under NO_COLOR — the marks
// (✓ ✗ ↻ =) carry the meaning without colour.
import { createContext, useContext, type ReactNode } from 'react';
import { Text } from 'ink';
import type { Tone } from './describe.js';

export interface Theme {
  color: boolean;
}

export const ThemeContext = createContext<Theme>({ color: true });

const COLORS: Record<Tone, string | undefined> = {
  ok: 'green',
  fail: 'red',
  run: 'cyan',
  warn: 'magenta',
  dim: undefined,
  plain: undefined,
};

export function Paint({ tone, bold, children }: { tone: Tone; bold?: boolean; children: ReactNode }) {
  const { color } = useContext(ThemeContext);
  const name = color ? COLORS[tone] : undefined;
  return (
    <Text {...(name ? { color: name } : {})} dimColor={tone === 'dim'} bold={bold ?? false}>
      {children}
    </Text>
  );
}
