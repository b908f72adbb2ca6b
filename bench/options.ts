// The benchmark's knobs: flags first, then BENCH_* env, then defaults; `--quick` shrinks every count
// for a sanity run and writes outside the repo unless --out says otherwise.
import { parseArgs } from 'node:util';

export type ServiceName = 'hello' | 'large';
export const SERVICE_NAMES: readonly ServiceName[] = ['hello', 'large'];

export interface BenchOptions {
  quick: boolean;
  /** The services measured, in order: examples/hello, bench/fixtures/large. */
  services: ServiceName[];
  /** Cold pairs (tsko, ko), each on empty caches. */
  cold: number;
  /** Timed warm rounds on hello (tsko save, go build, ko build, tsko build, air save each). */
  warm: number;
  /** Timed warm rounds on the large service (the same, plus the remote-path save). */
  warmLarge: number;
  /** Untimed rounds first, so one-off costs (first link in a new dir) are not in the medians. */
  warmup: number;
  comment: number;
  /** Saves in the RSS phase, and its time bound. */
  rss: number;
  rssMinutes: number;
  /** Quiet time after each settled save (a person does not save every millisecond). */
  gapMs: number;
  /** Saves made in the profiled daemon when a target is missed. */
  profileSaves: number;
  /** Profile even when every target is met. */
  profile: boolean;
  ko: boolean;
  /** air as the plain-restart peer. */
  air: boolean;
  airVersion: string;
  /** The remote path: a second daemon with --layer-compression gzip pushing to ko's registry (large). */
  remote: boolean;
  /** `tsko version` runs (spawn → exit), interleaved with `node -e 0`. */
  oneShot: number;
  /** When RSS grows past the target: heap snapshots around `heapSaves` more saves. */
  heap: boolean;
  heapSaves: number;
  koVersion: string;
  /** The whole run's bound. */
  maxMinutes: number;
  /** Where results.json and results.md go; undefined: bench/ for a full run, a temp dir for --quick. */
  out: string | undefined;
  /** Only re-render this results.json (targets, why, markdown) with the current report code. */
  render: string | undefined;
}

const HELP = `npm run bench -- [--quick] [--services hello,large] [--cold N] [--warm N] [--warm-large N] [--warmup N]
                   [--comment N] [--rss N] [--rss-minutes M] [--one-shot N] [--gap-ms MS] [--profile] [--profile-saves N]
                   [--no-ko] [--no-air] [--no-remote] [--no-heap] [--heap-saves N] [--ko-version vX.Y.Z] [--air-version vX.Y.Z]
                   [--max-minutes M] [--out DIR]
npm run bench -- --render bench/results.json   (re-derive targets, why and results.md from the raw numbers)
env: BENCH_SERVICES, BENCH_COLD, BENCH_WARM, BENCH_WARM_LARGE, BENCH_WARMUP, BENCH_COMMENT, BENCH_RSS, BENCH_RSS_MINUTES,
     BENCH_ONE_SHOT, BENCH_GAP_MS, BENCH_PROFILE_SAVES, BENCH_KO_VERSION, BENCH_AIR_VERSION, BENCH_MAX_MINUTES,
     BENCH_NO_KO=1, BENCH_NO_AIR=1, BENCH_NO_REMOTE=1, BENCH_NO_HEAP=1, BENCH_HEAP_SAVES`;

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean' },
      services: { type: 'string' },
      'warm-large': { type: 'string' },
      'one-shot': { type: 'string' },
      'no-air': { type: 'boolean' },
      'no-remote': { type: 'boolean' },
      'air-version': { type: 'string' },
      cold: { type: 'string' },
      warm: { type: 'string' },
      warmup: { type: 'string' },
      comment: { type: 'string' },
      rss: { type: 'string' },
      'rss-minutes': { type: 'string' },
      'gap-ms': { type: 'string' },
      profile: { type: 'boolean' },
      'profile-saves': { type: 'string' },
      'no-ko': { type: 'boolean' },
      'no-heap': { type: 'boolean' },
      'heap-saves': { type: 'string' },
      'ko-version': { type: 'string' },
      'max-minutes': { type: 'string' },
      out: { type: 'string' },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const quick = Boolean(values.quick);
  const count = (flag: string | undefined, envValue: string | undefined, full: number, short: number, name: string): number => {
    const raw = flag ?? envValue;
    if (raw === undefined || raw === '') return quick ? short : full;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
    return n;
  };
  const servicesRaw = values.services ?? env.BENCH_SERVICES ?? SERVICE_NAMES.join(',');
  const services = [...new Set(servicesRaw.split(',').map((name) => name.trim()).filter(Boolean))];
  const unknown = services.filter((name) => !SERVICE_NAMES.includes(name as ServiceName));
  if (unknown.length > 0 || services.length === 0) throw new Error(`--services takes a list of ${SERVICE_NAMES.join(', ')}; got "${servicesRaw}"`);
  return {
    quick,
    services: SERVICE_NAMES.filter((name) => services.includes(name)),
    cold: Math.max(1, Math.round(count(values.cold, env.BENCH_COLD, 3, 1, '--cold'))),
    warm: Math.max(1, Math.round(count(values.warm, env.BENCH_WARM, 20, 3, '--warm'))),
    warmLarge: Math.max(1, Math.round(count(values['warm-large'], env.BENCH_WARM_LARGE, 8, 2, '--warm-large'))),
    warmup: Math.round(count(values.warmup, env.BENCH_WARMUP, 1, 1, '--warmup')),
    comment: Math.max(1, Math.round(count(values.comment, env.BENCH_COMMENT, 3, 1, '--comment'))),
    rss: Math.round(count(values.rss, env.BENCH_RSS, 200, 20, '--rss')),
    rssMinutes: count(values['rss-minutes'], env.BENCH_RSS_MINUTES, 10, 2, '--rss-minutes'),
    gapMs: Math.round(count(values['gap-ms'], env.BENCH_GAP_MS, 500, 300, '--gap-ms')),
    profileSaves: Math.round(count(values['profile-saves'], env.BENCH_PROFILE_SAVES, 10, 3, '--profile-saves')),
    profile: Boolean(values.profile),
    ko: !values['no-ko'] && env.BENCH_NO_KO !== '1',
    air: !values['no-air'] && env.BENCH_NO_AIR !== '1',
    airVersion: values['air-version'] ?? env.BENCH_AIR_VERSION ?? 'v1.67.4',
    remote: !values['no-remote'] && env.BENCH_NO_REMOTE !== '1',
    oneShot: Math.max(1, Math.round(count(values['one-shot'], env.BENCH_ONE_SHOT, 15, 5, '--one-shot'))),
    heap: !values['no-heap'] && env.BENCH_NO_HEAP !== '1',
    heapSaves: Math.max(1, Math.round(count(values['heap-saves'], env.BENCH_HEAP_SAVES, 50, 10, '--heap-saves'))),
    koVersion: values['ko-version'] ?? env.BENCH_KO_VERSION ?? 'v0.19.1',
    maxMinutes: count(values['max-minutes'], env.BENCH_MAX_MINUTES, 50, 20, '--max-minutes'),
    out: values.out,
    render: values.render,
  };
}

export function helpText(): string {
  return HELP;
}
