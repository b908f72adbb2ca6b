// The binaries of the tests' real Kubernetes control plane: kube-apiserver and
// kube-controller-manager built from the Go module proxy (a temp module requiring
// k8s.io/kubernetes with every staging module replaced by its published v0.Y.Z), and etcd built
// from go.etcd.io. Built once per machine into ${XDG_CACHE_HOME:-~/.cache}/tsko-dev/kube/<version>/
// (the way the conformance suite and bench tools are cached), under a lock so two test processes
// never build at the same time; later runs find them and return at once.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The Kubernetes release the tests run against (the author used v1.34). */
export const KUBE_VERSION = 'v1.34.4';
/** The etcd that release is built and tested with (k8s.io/kubernetes v1.34.4's go.mod). */
export const ETCD_VERSION = 'v3.6.4';

/** The staging modules of k8s.io/kubernetes (its go.mod maps them to ./staging/src/k8s.io/...). */
const STAGING_MODULES = [
  'api', 'apiextensions-apiserver', 'apimachinery', 'apiserver', 'cli-runtime', 'client-go',
  'cloud-provider', 'cluster-bootstrap', 'code-generator', 'component-base', 'component-helpers',
  'controller-manager', 'cri-api', 'cri-client', 'csi-translation-lib', 'dynamic-resource-allocation',
  'endpointslice', 'externaljwt', 'kms', 'kube-aggregator', 'kube-controller-manager', 'kube-proxy',
  'kube-scheduler', 'kubectl', 'kubelet', 'metrics', 'mount-utils', 'pod-security-admission',
  'sample-apiserver', 'sample-cli-plugin', 'sample-controller',
];

const BUILD_TIMEOUT_MS = 45 * 60_000;
const LOCK_WAIT_MS = 50 * 60_000;

export interface ControlPlaneBinaries {
  etcd: string;
  apiserver: string;
  controllerManager: string;
  /** The Kubernetes version, e.g. v1.34.4. */
  version: string;
}

export interface BinariesOptions {
  /** The cache root; default ${XDG_CACHE_HOME:-~/.cache}. */
  cacheHome?: string;
  /** Where progress lines go; default stderr. */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export function defaultCacheHome(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
}

/** The directory that holds (or will hold) the three binaries. */
export function binariesDir(cacheHome = defaultCacheHome()): string {
  return join(cacheHome, 'tsko-dev', 'kube', KUBE_VERSION);
}

function binariesIn(dir: string): ControlPlaneBinaries {
  return {
    etcd: join(dir, 'etcd'),
    apiserver: join(dir, 'kube-apiserver'),
    controllerManager: join(dir, 'kube-controller-manager'),
    version: KUBE_VERSION,
  };
}

function allPresent(b: ControlPlaneBinaries): boolean {
  return existsSync(b.etcd) && existsSync(b.apiserver) && existsSync(b.controllerManager);
}

/** The cached binaries, built first when missing. */
export async function controlPlaneBinaries(options: BinariesOptions = {}): Promise<ControlPlaneBinaries> {
  const dir = binariesDir(options.cacheHome);
  const wanted = binariesIn(dir);
  if (allPresent(wanted)) return wanted;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  await mkdir(dir, { recursive: true });
  const release = await acquireLock(join(dir, '.build.lock'), log, options.signal);
  try {
    // Another process may have built them while this one waited for the lock.
    if (allPresent(wanted)) return wanted;
    await build(dir, wanted, log, options.signal);
    return wanted;
  } finally {
    await release();
  }
}

/**
 * An exclusive lock: a directory made atomically, holding the owner's pid. A lock whose owner is
 * gone (a killed build) is taken over.
 */
async function acquireLock(path: string, log: (line: string) => void, signal: AbortSignal | undefined): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let told = false;
  for (;;) {
    signal?.throwIfAborted();
    try {
      await mkdir(path);
      await writeFile(join(path, 'pid'), String(process.pid));
      return () => rm(path, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = lockOwner(path);
    if (owner !== undefined && !processAlive(owner)) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${path} (held by pid ${owner ?? '?'})`);
    if (!told) {
      log(`kube: another process (pid ${owner ?? '?'}) is building the control plane binaries; waiting for it`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function lockOwner(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(path, 'pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    // Just made, pid not written yet: treat as alive.
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function goModule(): string {
  const lines = [
    'module tsko.dev/kube-control-plane',
    '',
    'go 1.24.0',
    '',
    `require k8s.io/kubernetes ${KUBE_VERSION}`,
    `require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}`,
    '',
  ];
  const staging = KUBE_VERSION.replace(/^v1\./, 'v0.');
  for (const m of STAGING_MODULES) lines.push(`replace k8s.io/${m} => k8s.io/${m} ${staging}`);
  return `${lines.join('\n')}\n`;
}

/** What `/version` reports: without these the binaries say v0.0.0-master. */
function versionLdflags(): string {
  const [major, minor] = KUBE_VERSION.replace(/^v/, '').split('.');
  const pkgs = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'];
  const vars: Record<string, string> = {
    gitVersion: KUBE_VERSION,
    gitMajor: major ?? '1',
    gitMinor: minor ?? '0',
    gitTreeState: 'clean',
    buildDate: '1970-01-01T00:00:00Z',
  };
  return pkgs.flatMap((p) => Object.entries(vars).map(([k, v]) => `-X ${p}.${k}=${v}`)).join(' ');
}

async function build(dir: string, out: ControlPlaneBinaries, log: (line: string) => void, signal: AbortSignal | undefined): Promise<void> {
  const started = Date.now();
  const work = await mkdtemp(join(dir, 'build-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CGO_ENABLED: '0',
    GOFLAGS: '-mod=mod',
    GOTOOLCHAIN: 'local',
  };
  const step = async (what: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<void> => {
    const t0 = Date.now();
    log(`kube: ${what}…`);
    await runGo(args, work, { ...env, ...extraEnv }, signal);
    log(`kube: ${what}: done in ${Math.round((Date.now() - t0) / 1000)} s`);
  };
  try {
    log(`kube: building kube-apiserver, kube-controller-manager ${KUBE_VERSION} and etcd ${ETCD_VERSION} into ${dir} (once; several minutes)`);
    await writeFile(join(work, 'go.mod'), goModule());
    const cmds = ['kube-apiserver', 'kube-controller-manager'].map((c) => `k8s.io/kubernetes/cmd/${c}@${KUBE_VERSION}`);
    await step('resolving modules', ['get', ...cmds, `go.etcd.io/etcd/server/v3@${ETCD_VERSION}`]);
    const ldflags = versionLdflags();
    await step('building kube-apiserver', ['build', '-ldflags', ldflags, '-o', join(work, 'kube-apiserver'), 'k8s.io/kubernetes/cmd/kube-apiserver']);
    await step('building kube-controller-manager', ['build', '-ldflags', ldflags, '-o', join(work, 'kube-controller-manager'), 'k8s.io/kubernetes/cmd/kube-controller-manager']);
    // etcd's server module root is its main package; `go install …@v3.6.4` refuses it (its go.mod
    // has replace lines), so it is built inside the same temp module, at the version required above.
    await step('building etcd', ['build', '-o', join(work, 'etcd'), 'go.etcd.io/etcd/server/v3']);
    // Rename into place last, etcd last of all: allPresent() is true only when all three are whole.
    await rename(join(work, 'kube-apiserver'), out.apiserver);
    await rename(join(work, 'kube-controller-manager'), out.controllerManager);
    await rename(join(work, 'etcd'), out.etcd);
    log(`kube: control plane binaries ready in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function runGo(args: string[], cwd: string, env: NodeJS.ProcessEnv, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: BUILD_TIMEOUT_MS, ...(signal ? { signal } : {}) });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-8192);
    });
    child.once('error', reject);
    child.once('close', (code, sig) => {
      if (code === 0) resolve();
      else {
        const tail = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('go: downloading')).slice(-6).join('\n');
        reject(new Error(`go ${args[0] ?? ''} failed (${code ?? sig}):\n${tail}`));
      }
    });
  });
}
