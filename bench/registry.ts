// `npm run bench:registry`: tsko's embedded registry (`tsko registry serve`, a child process) next to
// Debian's docker-registry (distribution 2.8.2) in the same run, on 127.0.0.1: one blob GET of
// --size-mb, --parallel GETs of it at once (curl), and a skopeo push of an image with one fresh
// layer of that size; plus each server's idle and after-load RSS. Rounds alternate which server
// goes first, so load from elsewhere on the machine hits both alike; medians are compared against
// the target (tsko ≤ 1.1 × docker-registry). Writes registry-results.json and registry-results.md
// to --out (default bench/). Every child is stopped on exit, on error, on Ctrl-C and at the deadline.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET_RATIO = 1.1;
const CURL_MAX_SECONDS = 120;
const SKOPEO_TIMEOUT_MS = 5 * 60_000;
const START_TIMEOUT_MS = 20_000;
const SETTLE_MS = 3000;

interface Options {
  sizeMb: number;
  parallel: number;
  getRounds: number;
  parallelRounds: number;
  pushRounds: number;
  maxMinutes: number;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      'size-mb': { type: 'string' },
      parallel: { type: 'string' },
      'get-rounds': { type: 'string' },
      'parallel-rounds': { type: 'string' },
      'push-rounds': { type: 'string' },
      'max-minutes': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const int = (name: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${text}`);
    return n;
  };
  return {
    sizeMb: int('size-mb', values['size-mb'], quick ? 20 : 100),
    parallel: int('parallel', values.parallel, 20),
    getRounds: int('get-rounds', values['get-rounds'], quick ? 3 : 15),
    parallelRounds: int('parallel-rounds', values['parallel-rounds'], quick ? 2 : 7),
    pushRounds: int('push-rounds', values['push-rounds'], quick ? 2 : 11),
    maxMinutes: int('max-minutes', values['max-minutes'], quick ? 5 : 20),
    out: resolve(values.out ?? (quick ? join(REPO, 'dist', 'bench-registry-quick') : join(REPO, 'bench'))),
  };
}

// ---- children -------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

async function cleanup(): Promise<void> {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
}

function run(file: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, ...(env ? { env } : {}) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolveRun({ stdout, stderr });
    });
    track(child);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForV2(host: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${host} did not answer /v2/ within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Memory {
  rssMb: number;
  anonMb: number | undefined;
  fileMb: number | undefined;
  peakMb: number | undefined;
}

function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined;
  };
  return { rssMb: field('VmRSS') ?? NaN, anonMb: field('RssAnon'), fileMb: field('RssFile'), peakMb: field('VmHWM') };
}

interface Server {
  name: string;
  host: string;
  pid: number;
}

async function startDockerRegistry(work: string): Promise<Server> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(work, 'docker-registry.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: {level: error, accesslog: {disabled: true}}',
      'storage:',
      `  filesystem: {rootdirectory: ${JSON.stringify(join(work, 'docker-registry-data'))}}`,
      '  delete: {enabled: true}',
      '  cache: {blobdescriptor: inmemory}',
      'http:',
      `  addr: ${host}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      '  debug: {addr: ""}',
      '',
    ].join('\n'),
  );
  const child = track(spawn('docker-registry', ['serve', config], { stdio: 'ignore' }));
  await waitForV2(host);
  return { name: 'docker-registry', host, pid: child.pid! };
}

/** `tsko registry serve` as the CLI runs it (dist/src/cli/main.js, no wrapper process), from a copy of dist. */
async function startTsko(work: string, entry: 'cli' | 'registry-only'): Promise<Server> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const root = join(work, `tsko-${entry}-data`);
  const args =
    entry === 'cli'
      ? [join(work, 'tsko', 'dist', 'src', 'cli', 'main.js'), 'registry', 'serve', '--addr', host, '--root', root]
      : [join(work, 'tsko', 'registry-only.mjs'), 'registry', 'serve', '--addr', host, '--root', root];
  const child = track(spawn(process.execPath, args, { stdio: 'ignore' }));
  await waitForV2(host);
  return { name: entry === 'cli' ? 'tsko' : 'tsko (registry command alone)', host, pid: child.pid! };
}

/** A copy of the built CLI, so a concurrent build or `npm test` can't change it mid-run. */
async function copyTsko(work: string): Promise<void> {
  const dir = join(work, 'tsko');
  await mkdir(join(dir, 'dist'), { recursive: true });
  await cp(join(REPO, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
  await cp(join(REPO, 'dist', 'ui'), join(dir, 'dist', 'ui'), { recursive: true });
  await cp(join(REPO, 'package.json'), join(dir, 'package.json'));
  await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // What `tsko registry serve` loads once the CLI loads commands lazily: commander, the registry
  // command and the server, nothing else.
  await writeFile(
    join(dir, 'registry-only.mjs'),
    [
      "import { Command } from 'commander';",
      "import { registerRegistryCommand } from './dist/src/cli/registry.js';",
      "const program = new Command('tsko').option('-v, --verbose').exitOverride();",
      'registerRegistryCommand(program);',
      'await program.parseAsync(process.argv);',
      '',
    ].join('\n'),
  );
}

// ---- the image --------------------------------------------------------------------------------

interface Layout {
  dir: string;
  layerDigest: string;
}

/** An OCI layout with one fresh random layer of `sizeMb` (stored uncompressed; skopeo copies it as is). */
async function writeLayout(dir: string, sizeMb: number): Promise<Layout> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const hash = createHash('sha256');
  const tmp = join(dir, 'layer.tmp');
  const out = createWriteStream(tmp);
  for (let i = 0; i < sizeMb; i++) {
    const chunk = randomBytes(1024 * 1024);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, reject) => {
    out.once('error', reject);
    out.end(() => r());
  });
  const layerHex = hash.digest('hex');
  await rename(tmp, join(dir, 'blobs', 'sha256', layerHex));
  const blob = async (bytes: Buffer) => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(dir, 'blobs', 'sha256', hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const config = await blob(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] }, config: {} })),
  );
  const manifest = await blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerHex}`, size: sizeMb * 1024 * 1024 }],
      }),
    ),
  );
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }],
    }),
  );
  return { dir, layerDigest: `sha256:${layerHex}` };
}

// ---- measurements -----------------------------------------------------------------------------

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function skopeoPush(work: string, layout: Layout, host: string, repository: string): Promise<number> {
  const policy = join(work, 'policy.json');
  const env = { ...process.env, HOME: join(work, 'home') };
  const start = process.hrtime.bigint();
  await run(
    'skopeo',
    ['--policy', policy, 'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout.dir}:bench`, `docker://${host}/${repository}:bench`],
    SKOPEO_TIMEOUT_MS,
    env,
  );
  return seconds(start);
}

async function curlGet(url: string, expectBytes: number): Promise<number> {
  const { stdout } = await run('curl', ['-s', '-f', '--max-time', String(CURL_MAX_SECONDS), '-o', '/dev/null', '-w', '%{time_total} %{size_download}', url], (CURL_MAX_SECONDS + 5) * 1000);
  const [time, size] = stdout.trim().split(' ');
  if (Number(size) !== expectBytes) throw new Error(`GET ${url}: ${size} bytes, expected ${expectBytes}`);
  return Number(time);
}

async function parallelGets(url: string, n: number, expectBytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: n }, () => curlGet(url, expectBytes)));
  return seconds(start);
}

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Measure {
  name: string;
  unit: 's';
  tsko: number[];
  dockerRegistry: number[];
}

/** `rounds` rounds of `fn` against both servers, the first one alternating. */
async function alternate(rounds: number, fn: (server: Server, round: number) => Promise<number>, tsko: Server, docker: Server): Promise<{ tsko: number[]; docker: number[] }> {
  const out = { tsko: [] as number[], docker: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [tsko, docker] : [docker, tsko];
    for (const server of order) (server === tsko ? out.tsko : out.docker).push(await fn(server, round));
  }
  return out;
}

// ---- report ------------------------------------------------------------------------------------

interface Results {
  date: string;
  commit: string;
  machine: { cpus: number; model: string; memGb: number; kernel: string; loadBefore: number[]; loadAfter: number[]; node: string };
  options: Options;
  measures: Array<Measure & { medianTsko: number; medianDockerRegistry: number; ratio: number; met: boolean }>;
  memory: Record<string, { idle: Memory; afterLoad?: Memory }>;
}

function renderMarkdown(r: Results): string {
  const f = (n: number) => n.toFixed(3);
  const lines = [
    `# Registry benchmark: tsko vs docker-registry`,
    '',
    `\`npm run bench:registry\` (bench/registry.ts), ${r.date}, tsko ${r.commit}, Node ${r.machine.node}, ${r.machine.cpus} × ${r.machine.model}, ` +
      `${r.machine.memGb} GB, Linux ${r.machine.kernel}; load average ${r.machine.loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ` +
      `${r.machine.loadAfter.map((l) => l.toFixed(1)).join(' ')} after (the machine is shared).`,
    '',
    `Blob ${r.options.sizeMb} MB; clients: curl for GETs, skopeo 1.9 for the push (one fresh ${r.options.sizeMb} MB layer per round, ` +
      'a new repository each time). Rounds alternate which server goes first. Times are medians, in seconds.',
    '',
    '| measure | rounds | tsko | docker-registry | tsko / docker-registry | target ≤ 1.1× |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
    ...r.measures.map(
      (m) => `| ${m.name} | ${m.tsko.length} | ${f(m.medianTsko)} | ${f(m.medianDockerRegistry)} | ${m.ratio.toFixed(2)}× | ${m.met ? 'met' : 'missed'} |`,
    ),
    '',
    'Samples (s):',
    '',
    ...r.measures.map((m) => `- ${m.name}: tsko ${m.tsko.map(f).join(', ')}; docker-registry ${m.dockerRegistry.map(f).join(', ')}`),
    '',
    '| process | idle RSS | of it: anon / file-backed | after the load: RSS | peak RSS |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...Object.entries(r.memory).map(([name, m]) => {
      const mb = (v: number | undefined) => (v === undefined ? '–' : `${v.toFixed(1)} MB`);
      return `| ${name} | ${mb(m.idle.rssMb)} | ${mb(m.idle.anonMb)} / ${mb(m.idle.fileMb)} | ${mb(m.afterLoad?.rssMb)} | ${mb(m.afterLoad?.peakMb ?? m.idle.peakMb)} |`;
    }),
    '',
    `Idle: ${SETTLE_MS / 1000} s after /v2/ first answered, before any other request. "tsko" is \`node dist/src/cli/main.js registry serve\` ` +
      '(the whole CLI as it loads today, no wrapper process); "tsko (registry command alone)" is the same serve through commander and ' +
      'src/cli/registry.ts only, i.e. what a CLI that loads commands lazily loads; its "after the load" is after one push and one round ' +
      'of parallel GETs.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const deadline = setTimeout(() => {
    process.stderr.write(`bench:registry: over --max-minutes ${options.maxMinutes}, stopping\n`);
    void cleanup().finally(() => process.exit(1));
  }, options.maxMinutes * 60_000);
  deadline.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().finally(() => process.exit(130)));

  const say = (line: string) => process.stderr.write(`bench:registry: ${line}\n`);
  const work = await mkdtemp(join(tmpdir(), 'tsko-bench-registry-'));
  tempDirs.add(work);
  try {
    await mkdir(join(work, 'home'), { recursive: true });
    await writeFile(join(work, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await copyTsko(work);
    const loadBefore = loadavg();

    const docker = await startDockerRegistry(work);
    const tsko = await startTsko(work, 'cli');
    const lazy = await startTsko(work, 'registry-only');
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const mem: Results['memory'] = {
      tsko: { idle: memory(tsko.pid) },
      'tsko (registry command alone)': { idle: memory(lazy.pid) },
      'docker-registry': { idle: memory(docker.pid) },
    };
    say(`idle RSS: tsko ${mem.tsko!.idle.rssMb} MB, registry command alone ${mem['tsko (registry command alone)']!.idle.rssMb} MB, docker-registry ${mem['docker-registry']!.idle.rssMb} MB`);

    const bytes = options.sizeMb * 1024 * 1024;
    const layouts: Layout[] = [];
    say(`push: ${options.pushRounds} rounds of a fresh ${options.sizeMb} MB layer with skopeo`);
    const push = await alternate(
      options.pushRounds,
      async (server, round) => {
        layouts[round] ??= await writeLayout(join(work, `layout-${round}`), options.sizeMb);
        return skopeoPush(work, layouts[round]!, server.host, `bench/push${round}`);
      },
      tsko,
      docker,
    );
    const blobPath = (server: Server) => `http://${server.host}/v2/bench/push0/blobs/${layouts[0]!.layerDigest}`;
    for (const layout of layouts.slice(1)) await rm(layout.dir, { recursive: true, force: true });

    say(`single GET: ${options.getRounds} rounds`);
    // One untimed GET each first: the first read of the file comes from disk, later ones from the page cache.
    for (const server of [tsko, docker]) await curlGet(blobPath(server), bytes);
    const single = await alternate(options.getRounds, (server) => curlGet(blobPath(server), bytes), tsko, docker);
    say(`${options.parallel} parallel GETs: ${options.parallelRounds} rounds`);
    const parallel = await alternate(options.parallelRounds, (server) => parallelGets(blobPath(server), options.parallel, bytes), tsko, docker);
    mem.tsko!.afterLoad = memory(tsko.pid);
    mem['docker-registry']!.afterLoad = memory(docker.pid);
    // The same push and one round of parallel GETs through the lazily loaded entry, for its RSS under load.
    await skopeoPush(work, layouts[0]!, lazy.host, 'bench/push0');
    await parallelGets(blobPath(lazy), options.parallel, bytes);
    mem['tsko (registry command alone)']!.afterLoad = memory(lazy.pid);

    const measures: Results['measures'] = [
      { name: `GET one ${options.sizeMb} MB blob`, unit: 's' as const, tsko: single.tsko, dockerRegistry: single.docker },
      { name: `${options.parallel} parallel GETs of it (wall time)`, unit: 's' as const, tsko: parallel.tsko, dockerRegistry: parallel.docker },
      { name: `skopeo push of a ${options.sizeMb} MB image`, unit: 's' as const, tsko: push.tsko, dockerRegistry: push.docker },
    ].map((m) => {
      const medianTsko = median(m.tsko);
      const medianDockerRegistry = median(m.dockerRegistry);
      const ratio = medianTsko / medianDockerRegistry;
      return { ...m, medianTsko, medianDockerRegistry, ratio, met: ratio <= TARGET_RATIO };
    });
    let commit = 'unknown';
    try {
      commit = (await run('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], 10_000)).stdout.trim();
    } catch {
      // not a checkout
    }
    const results: Results = {
      date: new Date().toISOString(),
      commit,
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model ?? 'unknown',
        memGb: Math.round(totalmem() / 2 ** 30),
        kernel: release(),
        loadBefore,
        loadAfter: loadavg(),
        node: process.versions.node,
      },
      options,
      measures,
      memory: mem,
    };
    await mkdir(options.out, { recursive: true });
    await writeFile(join(options.out, 'registry-results.json'), `${JSON.stringify(results, null, 2)}\n`);
    const markdown = renderMarkdown(results);
    await writeFile(join(options.out, 'registry-results.md'), markdown);
    process.stdout.write(markdown);
  } finally {
    await cleanup();
    clearTimeout(deadline);
  }
}

await main();
