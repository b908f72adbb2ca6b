// The least of a Kubernetes API server that `kubectl apply|create --dry-run=client` needs when no
// cluster can run here: discovery (/api, /apis) for core v1 and apps/v1, and 404 for every object,
// so kubectl maps each kind, finds nothing live, and reports what it would create. OpenAPI is not
// served (kubectl then needs --validate=false): validation against real schemas needs a real server.
import { createServer, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface KubeDiscovery {
  url: string;
  /** A kubeconfig file whose current context points at this server (namespace `default`). */
  kubeconfig: string;
  /** Requests seen, `METHOD path`. */
  requests: string[];
  stop(): Promise<void>;
}

const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update'];
const CORE = ['Pod', 'Service', 'ConfigMap', 'Secret', 'ServiceAccount'].map((kind) => ({
  name: `${kind.toLowerCase()}s`,
  singularName: kind.toLowerCase(),
  namespaced: true,
  kind,
  verbs,
}));
const APPS = ['Deployment', 'StatefulSet', 'DaemonSet'].map((kind) => ({ name: `${kind.toLowerCase()}s`, singularName: kind.toLowerCase(), namespaced: true, kind, verbs }));

export async function startKubeDiscovery(dir: string): Promise<KubeDiscovery> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    requests.push(`${req.method} ${path}`);
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    req.resume();
    if (path === '/version') return send(200, { major: '1', minor: '32', gitVersion: 'v1.32.0' });
    if (path === '/api') return send(200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] });
    if (path === '/api/v1') return send(200, { kind: 'APIResourceList', groupVersion: 'v1', resources: CORE });
    if (path === '/apis') {
      return send(200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [{ name: 'apps', versions: [{ groupVersion: 'apps/v1', version: 'v1' }], preferredVersion: { groupVersion: 'apps/v1', version: 'v1' } }],
      });
    }
    if (path === '/apis/apps/v1') return send(200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'apps/v1', resources: APPS });
    return send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${path} not found` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: fake, cluster: {server: "${url}"}}]`,
      'users: [{name: fake, user: {}}]',
      'contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]',
      'current-context: fake',
      '',
    ].join('\n'),
  );
  return {
    url,
    kubeconfig,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
