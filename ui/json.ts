// The JSON reporter: each event as one JSON object per line (`tsko dev --json`), the stable
// interface editors and CI read. The schema is src/events.ts, documented in the README.
import type { TskoEvent } from '../src/events.js';

export function createJsonReporter(write: (line: string) => void): (event: TskoEvent) => void {
  return (event) => write(JSON.stringify(event));
}
