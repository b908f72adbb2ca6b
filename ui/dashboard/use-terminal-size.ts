// The terminal's size, following resizes. Ink's useWindowSize falls back to spawning `tput` when
// a stream has no size; the dashboard only ever runs on a TTY (or with a fixed size in tests), so
// it reads the stream and falls back to 80×24.
import { useEffect, useState } from 'react';
import { useStdout } from 'ink';

export interface TerminalSize {
  columns: number;
  rows: number;
}

function sizeOf(stdout: NodeJS.WritableStream): TerminalSize {
  const { columns, rows } = stdout as Partial<Pick<NodeJS.WriteStream, 'columns' | 'rows'>>;
  return { columns: columns && columns > 0 ? columns : 80, rows: rows && rows > 0 ? rows : 24 };
}

export function useTerminalSize(fixed?: TerminalSize): TerminalSize {
  const { stdout } = useStdout();
  const [size, setSize] = useState(() => fixed ?? sizeOf(stdout));
  useEffect(() => {
    if (fixed) return;
    const onResize = () => setSize(sizeOf(stdout));
    stdout.on('resize', onResize);
    onResize();
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout, fixed]);
  return fixed ?? size;
}
