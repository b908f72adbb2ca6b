// The Go build cache the tests share with the developer's: tests set XDG_CACHE_HOME to isolate
// tsko's own cache, which would otherwise also move Go's cache and make every build cold.
import { execFileSync } from 'node:child_process';

let cached: string | undefined;

export function goCacheDir(): string {
  cached ??= execFileSync('go', ['env', 'GOCACHE'], { encoding: 'utf8' }).trim();
  return cached;
}
