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

/**
 * The recordings predate go.build's counts, and their first builds ran on a warm Go cache (under
 * half a second). For tests of the cold-vs-warm table this says what a cold first build says:
 * every package of the service's first build compiled (`packages` of them).
 */
export function withColdFirstBuild(events: TskoEvent[], packages = 62): TskoEvent[] {
  const seen = new Set<string>();
  return events.map((event) => {
    if (event.type !== 'go.build' || seen.has(event.service ?? '')) return event;
    seen.add(event.service ?? '');
    return { ...event, compiled: packages, packages };
  });
}
