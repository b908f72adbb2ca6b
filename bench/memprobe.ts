// A quick look at where the `tsko dev` daemon's memory goes, without the full bench: one daemon on
// a temp copy of a service, a few saves, and after each settled save its VmRSS split by mapping
// (the node binary, V8's and malloc's anonymous pages, the brk heap) from /proc/PID/smaps, plus
// optionally a `go build` of a second copy after each save for the save→serving ratio.
//
//   tsc -p . && node dist/bench/memprobe.js --service large --saves 6 --go-build
//
// The large service uses the bench's GOCACHE (~/.cache/tsko-dev/gocache-large, warm after one
// bench run); hello gets its own under ~/.cache/tsko-dev. Numbers are the daemon's alone (its
// revisions and go build are other processes).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Children, freePort, memoryKb, sleep } from './children.js';
import { DevDaemon } from './daemon.js';
import { copyExample, editVersion } from './edit.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVICES: Record<string, string> = { hello: join(ROOT, 'examples/hello'), large: join(ROOT, 'bench/fixtures/large') };
const SETTLE_TIMEOUT_MS = 600_000;
const QUIET_MS = 500;

const { values } = parseArgs({
  options: {
    service: { type: 'string', default: 'large' },
    saves: { type: 'string', default: '6' },
    'go-build': { type: 'boolean', default: false },
  },
});
const serviceDir = SERVICES[values.service];
const saves = Number(values.saves);
if (!serviceDir || !Number.isInteger(saves) || saves < 1 || saves > 1000) {
  process.stderr.write('memprobe: --service hello|large, --saves 1..1000\n');
  process.exit(2);
}

const mb = (kb: number | undefined) => (kb === undefined ? '?' : (kb / 1024).toFixed(1));

/** Resident kB per kind of mapping: the node binary, other files, [heap] (brk) and anonymous. */
function rssByMapping(pid: number): string {
  const totals = new Map<string, number>();
  let kind = 'anon';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1] ?? '';
      kind = name === '' ? 'anon' : name === process.execPath ? 'node' : name.startsWith('/') ? 'libs' : name;
    } else if (line.startsWith('Rss:')) {
      totals.set(kind, (totals.get(kind) ?? 0) + Number(line.split(/\s+/)[1]));
    }
  }
  return [...totals].filter(([, kb]) => kb >= 512).map(([name, kb]) => `${name} ${mb(kb)}`).join(', ');
}

function line(daemon: DevDaemon): string {
  const memory = memoryKb(daemon.pid);
  const threads = readdirSync(`/proc/${daemon.pid}/task`).length;
  return `VmRSS ${mb(memory?.rss)} MB (RssAnon ${mb(memory?.anon)}, RssFile ${mb(memory?.file)}; ${rssByMapping(daemon.pid)}), VmHWM ${mb(memory?.hwm)}, ${threads} threads`;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const children = new Children();
try {
  const dir = await children.tempDir('tsko-memprobe-');
  const gocache = join(homedir(), '.cache', 'tsko-dev', values.service === 'large' ? 'gocache-large' : 'gocache-memprobe-hello');
  const copy = await copyExample(serviceDir, join(dir, 'tsko'), 'v0');
  const goCopy = values['go-build'] ? await copyExample(serviceDir, join(dir, 'go'), 'g0') : undefined;
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'GOPATH', 'GOMODCACHE', 'GOPROXY', 'GOFLAGS']) if (process.env[key]) env[key] = process.env[key] as string;
  Object.assign(env, { XDG_CACHE_HOME: join(dir, 'xdg'), GOCACHE: gocache, TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}` });
  const tskoBin = join(ROOT, 'bin', 'tsko.js');
  const daemon = DevDaemon.start(children, { tskoBin, cwd: copy.dir, port: await freePort(), env });
  const first = await daemon.settle(0, SETTLE_TIMEOUT_MS, QUIET_MS);
  console.log(`first iteration ${first.record.result}; ${line(daemon)}`);
  const serving: number[] = [];
  const ratios: number[] = [];
  const rss: number[] = [];
  for (let save = 1; save <= saves; save++) {
    const from = daemon.events.length;
    const at = await editVersion(copy, `v${save}`);
    const { record } = await daemon.settle(from, SETTLE_TIMEOUT_MS, QUIET_MS);
    const ms = (record.servingAt ?? record.endedAt) - at;
    serving.push(ms);
    let timing = `save ${save}: ${record.result}, save→serving ${ms} ms`;
    if (goCopy) {
      await editVersion(goCopy, `g${save}`);
      const started = Date.now();
      execFileSync('go', ['build', '-trimpath', '-o', join(dir, 'go-out'), '.'], { cwd: goCopy.dir, env: { ...env, CGO_ENABLED: '0' }, stdio: 'ignore' });
      const goMs = Date.now() - started;
      ratios.push(ms / goMs);
      timing += `, go build ${goMs} ms, ratio ${(ms / goMs).toFixed(2)}`;
      await sleep(QUIET_MS);
    }
    rss.push(memoryKb(daemon.pid)?.rss ?? NaN);
    console.log(`${timing}\n  ${line(daemon)}`);
  }
  const ratio = ratios.length > 0 ? `, ratio median ${median(ratios).toFixed(3)}` : '';
  console.log(`save→serving median ${median(serving)} ms${ratio}; VmRSS max ${mb(Math.max(...rss))} MB, first ${mb(rss[0])}, last ${mb(rss.at(-1))}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await daemon.stop();
} finally {
  await children.closeAll();
}
