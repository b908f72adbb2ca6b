// A real Kubernetes control plane for the tests: etcd, kube-apiserver and kube-controller-manager
// (built once from the Go module proxy, see binaries.ts) as child processes on free loopback ports,
// with self-signed certs, static token users, RBAC and the default admission plugins (PodSecurity
// included), plus an in-process stand-in kubelet (kubelet.ts) that binds pods to one node and gives
// each the fate the test chose: Ready, an image pull failure, or a crash loop with logs served
// through the real pods/log path. Nothing here is faked above the kubelet.
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../docker-registry.js';
import { controlPlaneBinaries, type ControlPlaneBinaries } from './binaries.js';
import { makeCerts } from './certs.js';
import { imageExists } from './image-exists.js';
import { kubeClient, type KubeClient } from './kube-client.js';
import { startStandInKubelet, type BehaviourFn, type PodBehaviour, type StandInKubelet } from './kubelet.js';
import { startProcess, type ControlPlaneProcess } from './processes.js';

export type { PodBehaviour } from './kubelet.js';
export { NODE_NAME } from './kubelet.js';
export { controlPlaneBinaries, KUBE_VERSION } from './binaries.js';

export interface ControlPlaneUser {
  name: string;
  token: string;
  groups?: string[];
}

export interface StartControlPlaneOptions {
  /** A temp dir for certs, etcd data, kubeconfigs. */
  dir: string;
  /** Static token users besides admin (system:masters). */
  users?: ControlPlaneUser[];
  /** Decides each pod container's fate from its image; default: 'ready' when the image's manifest exists in its registry (HEAD over http(s) on 127.0.0.1), else 'image-pull'. */
  behaviour?: BehaviourFn;
  signal?: AbortSignal;
}

export interface KubectlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  /** CA of the apiserver's serving cert (PEM file). */
  caFile: string;
  adminToken: string;
  /** Path of a kubeconfig whose user `admin` has an inline token. */
  adminKubeconfig: string;
  /** The apiserver's audit log (JSON lines, level Request, writes by users other than the control plane's own). */
  auditLogFile: string;
  /** The Kubernetes version of the apiserver, e.g. v1.34.4. */
  version: string;
  /** etcd's client URL (http://127.0.0.1:PORT). */
  etcdUrl: string;
  /** The stand-in kubelet's HTTPS port (the node's kubeletEndpoint). */
  kubeletPort: number;
  /** Process ids of etcd, kube-apiserver and kube-controller-manager. */
  pids(): number[];
  /** Writes a kubeconfig (cluster with certificate-authority-data) for a user given inline token, tokenFile, or nothing (anonymous); returns its path. */
  writeKubeconfig(options: { name: string; token?: string; tokenFile?: string; namespace?: string }): Promise<string>;
  /** Runs the installed kubectl against this control plane (admin unless kubeconfig given); never throws on exit code. */
  kubectl(args: string[], options?: { kubeconfig?: string; input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** Replace the pod behaviour while running (pods already started keep theirs; pull retries ask again). */
  setBehaviour(fn: StartControlPlaneOptions['behaviour']): void;
  /** What etcd, the apiserver and the controller manager wrote lately, for failing tests. */
  logs(): string;
  /** Kills everything, idempotent, frees the ports. */
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 120_000;
const ADMIN_USER = 'admin';
/** The control plane's own users: left out of the audit log. */
const CONTROLLER_MANAGER_USER = 'tsko:kube-controller-manager';
const KUBELET_USER = 'tsko:stand-in-kubelet';

/** The default behaviour: Ready when the image's manifest is in its (loopback) registry. */
export async function defaultBehaviour(image: string): Promise<PodBehaviour> {
  return (await imageExists(image)) ? { kind: 'ready' } : { kind: 'image-pull' };
}

function token(): string {
  return randomBytes(24).toString('base64url');
}

function csvField(s: string): string {
  if (/[",\n]/.test(s)) return `"${s.replace(/"/g, '""')}"`;
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startControlPlane(options: StartControlPlaneOptions): Promise<ControlPlane> {
  const binaries = await controlPlaneBinaries(options.signal ? { signal: options.signal } : {});
  const dir = options.dir;
  await mkdir(dir, { recursive: true });
  const certDir = join(dir, 'pki');
  await mkdir(certDir, { recursive: true });
  const certs = await makeCerts(certDir, options.signal);
  const ca = await readFile(certs.caCert, 'utf8');

  const adminToken = token();
  const controllerManagerToken = token();
  const kubeletToken = token();
  const tokenLines = [
    [adminToken, ADMIN_USER, 'admin', 'system:masters'],
    [controllerManagerToken, CONTROLLER_MANAGER_USER, CONTROLLER_MANAGER_USER, 'system:masters'],
    [kubeletToken, KUBELET_USER, KUBELET_USER, 'system:masters'],
    ...(options.users ?? []).map((u) => [u.token, u.name, u.name, ...(u.groups !== undefined && u.groups.length > 0 ? [u.groups.join(',')] : [])]),
  ];
  const tokenFile = join(dir, 'tokens.csv');
  await writeFile(tokenFile, tokenLines.map((l) => l.map(csvField).join(',')).join('\n') + '\n', { mode: 0o600 });

  const auditPolicy = join(dir, 'audit-policy.yaml');
  await writeFile(auditPolicy, stringify({
    apiVersion: 'audit.k8s.io/v1',
    kind: 'Policy',
    omitStages: ['RequestReceived'],
    rules: [
      { level: 'None', users: [CONTROLLER_MANAGER_USER, KUBELET_USER, 'system:apiserver'] },
      { level: 'None', verbs: ['get', 'list', 'watch'] },
      { level: 'Request' },
    ],
  }));
  const auditLogFile = join(dir, 'audit.log');

  const processes: ControlPlaneProcess[] = [];
  let kubelet: StandInKubelet | undefined;
  let client: KubeClient | undefined;
  let behaviour: BehaviourFn = options.behaviour ?? defaultBehaviour;
  let kubeletLog = '';
  const logs = (): string => [
    ...processes.map((p) => `--- ${p.name} (pid ${p.pid}${p.exited() ? ', exited' : ''}) ---\n${p.output().slice(-6000)}`),
    `--- stand-in kubelet ---\n${kubeletLog}`,
  ].join('\n');

  let stopping: Promise<void> | undefined;
  /** Every call waits for the one teardown. */
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await kubelet?.stop();
      client?.close();
      // The controller manager first, etcd last: nothing talks to a dead etcd.
      for (const p of [...processes].reverse()) await p.stop();
    })();
    return stopping;
  };

  try {
    const etcd = await startEtcd(binaries, dir, processes);
    const apiserver = await startApiserver(binaries, dir, certs, tokenFile, auditPolicy, auditLogFile, etcd, processes, ca, adminToken);
    const server = `https://127.0.0.1:${apiserver.port}`;
    client = kubeClient(server, ca, kubeletToken);

    const kubeconfigFor = (name: string, user: Record<string, unknown>, namespace?: string): string => stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'tsko-test', cluster: { server, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
      users: [{ name, user }],
      contexts: [{ name, context: { cluster: 'tsko-test', user: name, ...(namespace !== undefined ? { namespace } : {}) } }],
      'current-context': name,
    });
    const writeKubeconfig = async (o: { name: string; token?: string; tokenFile?: string; namespace?: string }): Promise<string> => {
      const user = o.token !== undefined ? { token: o.token } : o.tokenFile !== undefined ? { tokenFile: o.tokenFile } : {};
      const path = join(dir, `kubeconfig-${o.name.replace(/[^\w.-]/g, '_')}.yaml`);
      await writeFile(path, kubeconfigFor(o.name, user, o.namespace), { mode: 0o600 });
      return path;
    };
    const adminKubeconfig = await writeKubeconfig({ name: ADMIN_USER, token: adminToken });
    const controllerManagerKubeconfig = join(dir, 'controller-manager.kubeconfig');
    await writeFile(controllerManagerKubeconfig, kubeconfigFor(CONTROLLER_MANAGER_USER, { token: controllerManagerToken }), { mode: 0o600 });

    processes.push(startProcess('kube-controller-manager', binaries.controllerManager, [
      `--kubeconfig=${controllerManagerKubeconfig}`,
      `--service-account-private-key-file=${certs.serviceAccountKey}`,
      `--root-ca-file=${certs.caCert}`,
      // No node-lifecycle controller: nothing evicts pods from the stand-in node.
      `--controllers=${[
        'deployment-controller', 'replicaset-controller', 'serviceaccount-controller', 'serviceaccount-token-controller',
        'namespace-controller', 'garbage-collector-controller', 'root-ca-certificate-publisher-controller',
        // Fills the aggregated ClusterRoles (view, edit, admin) tests bind users to.
        'clusterrole-aggregation-controller',
      ].join(',')}`,
      '--leader-elect=false',
      '--secure-port=0',
      '--use-service-account-credentials=false',
      '--v=1',
    ]));

    kubelet = await startStandInKubelet({
      client,
      certFile: certs.kubeletCert,
      keyFile: certs.kubeletKey,
      kubeVersion: binaries.version,
      behaviour: () => behaviour,
      log: (line) => {
        kubeletLog = `${kubeletLog}${line}\n`.slice(-16 * 1024);
      },
    });

    await waitFor('the default ServiceAccount', async () => {
      const res = await client!.request('GET', '/api/v1/namespaces/default/serviceaccounts/default');
      return res.status === 200;
    }, processes);

    const kubectlHome = join(dir, 'kubectl-home');
    await mkdir(kubectlHome, { recursive: true });
    return {
      server,
      caFile: certs.caCert,
      adminToken,
      adminKubeconfig,
      auditLogFile,
      version: binaries.version,
      etcdUrl: etcd,
      kubeletPort: kubelet.port,
      pids: () => processes.map((p) => p.pid),
      writeKubeconfig,
      kubectl: (args, o = {}) => runKubectl(args, o.kubeconfig ?? adminKubeconfig, kubectlHome, o.input, o.timeoutMs ?? 60_000),
      setBehaviour(fn) {
        behaviour = fn ?? defaultBehaviour;
      },
      logs,
      stop,
    };
  } catch (err) {
    const detail = logs();
    await stop();
    throw new Error(`control plane did not start: ${err instanceof Error ? err.message : String(err)}\n${detail}`);
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, processes: ControlPlaneProcess[]): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastError = '';
  while (Date.now() < deadline) {
    const dead = processes.find((p) => p.exited());
    if (dead !== undefined) throw new Error(`${dead.name} exited while waiting for ${what}`);
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${STARTUP_TIMEOUT_MS / 1000} s waiting for ${what}${lastError ? ` (${lastError})` : ''}`);
}

/** A process that exits within its first moments because its port was taken is started again on others. */
async function withPortRetries<T>(name: string, attempt: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await attempt();
    } catch (err) {
      last = err;
      if (!(err instanceof PortInUse)) throw err;
    }
  }
  throw new Error(`${name}: ports kept being taken: ${last instanceof Error ? last.message : String(last)}`);
}

class PortInUse extends Error {}

function portProblem(p: ControlPlaneProcess): boolean {
  return /address already in use/i.test(p.output());
}

async function startEtcd(binaries: ControlPlaneBinaries, dir: string, processes: ControlPlaneProcess[]): Promise<string> {
  return withPortRetries('etcd', async () => {
    const clientPort = await freePort();
    let peerPort = await freePort();
    for (let i = 0; i < 5 && peerPort === clientPort; i++) peerPort = await freePort();
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const p = startProcess('etcd', binaries.etcd, [
      '--name=tsko',
      `--data-dir=${join(dir, `etcd-${clientPort}`)}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=tsko=${peerUrl}`,
      '--initial-cluster-state=new',
      // Test data: durability is not worth the fsync latency on a shared disk.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    try {
      await waitFor('etcd', async () => (await httpStatus(`${clientUrl}/health`)) === 200, [p]);
    } catch (err) {
      await p.stop();
      if (portProblem(p)) throw new PortInUse(p.output().slice(-500));
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${p.output().slice(-3000)}`);
    }
    processes.push(p);
    return clientUrl;
  });
}

async function startApiserver(
  binaries: ControlPlaneBinaries,
  dir: string,
  certs: Awaited<ReturnType<typeof makeCerts>>,
  tokenFile: string,
  auditPolicy: string,
  auditLogFile: string,
  etcdUrl: string,
  processes: ControlPlaneProcess[],
  ca: string,
  adminToken: string,
): Promise<{ port: number }> {
  return withPortRetries('kube-apiserver', async () => {
    const port = await freePort();
    const p = startProcess('kube-apiserver', binaries.apiserver, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${certs.apiserverCert}`,
      `--tls-private-key-file=${certs.apiserverKey}`,
      `--client-ca-file=${certs.caCert}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${certs.serviceAccountPub}`,
      `--service-account-signing-key-file=${certs.serviceAccountKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      // pods/log is proxied to the stand-in kubelet at the node's InternalIP, its cert checked.
      '--kubelet-preferred-address-types=InternalIP',
      `--kubelet-certificate-authority=${certs.caCert}`,
      `--kubelet-client-certificate=${certs.kubeletClientCert}`,
      `--kubelet-client-key=${certs.kubeletClientKey}`,
      `--audit-policy-file=${auditPolicy}`,
      `--audit-log-path=${auditLogFile}`,
      '--audit-log-format=json',
      '--profiling=false',
      '--v=1',
    ]);
    const client = kubeClient(`https://127.0.0.1:${port}`, ca, adminToken);
    try {
      await waitFor('kube-apiserver /readyz', async () => (await client.request('GET', '/readyz')).status === 200, [p]);
    } catch (err) {
      await p.stop();
      if (portProblem(p)) throw new PortInUse(p.output().slice(-500));
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${p.output().slice(-3000)}`);
    } finally {
      client.close();
    }
    processes.push(p);
    return { port };
  });
}

async function httpStatus(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined;
  }
}

function runKubectl(args: string[], kubeconfig: string, home: string, input: string | undefined, timeoutMs: number): Promise<KubectlResult> {
  return new Promise((resolve) => {
    // A private HOME and cache dir: no ~/.kube of the machine, no discovery cache shared across runs.
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, KUBECONFIG: kubeconfig };
    const child = execFile('kubectl', [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(home, 'cache')}`, ...args], { env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ exitCode: code, stdout, stderr: stderr || (err !== null && typeof err.code !== 'number' ? err.message : '') });
    });
    child.stdin?.end(input ?? '');
  });
}
