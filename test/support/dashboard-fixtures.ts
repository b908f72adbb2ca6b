// Recorded `tsko dev --json` runs on a copy of examples/hello (test/fixtures/events/*.jsonl), read
// back as events for the dashboard tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TskoEvent } from '../../src/events.js';
import { repoRoot } from './tsko-cli.js';

export function fixture(name: string): TskoEvent[] {
  const text = readFileSync(join(repoRoot, 'test/fixtures/events', name), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as TskoEvent);
}
