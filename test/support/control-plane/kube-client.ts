// A minimal JSON client for the test control plane's apiserver (bearer token, the CA pinned), used
// by the stand-in kubelet and the startup checks: plain requests and a line-delimited watch.
import { Agent, request } from 'node:https';

export interface KubeResponse {
  status: number;
  body: string;
}

export interface KubeClient {
  request(method: string, path: string, body?: unknown, contentType?: string, signal?: AbortSignal): Promise<KubeResponse>;
  /** GET …?watch=1; calls onEvent per line until the server ends the stream; resolves then. */
  watch(path: string, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void>;
  close(): void;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

export function kubeClient(server: string, ca: string, token: string): KubeClient {
  const agent = new Agent({ keepAlive: true, ca, maxSockets: 16 });
  const base = new URL(server);
  const headers = (contentType?: string): Record<string, string> => ({
    Authorization: `Bearer ${token}`,
    Accept: 'application/json',
    'User-Agent': 'tsko-test-control-plane',
    ...(contentType !== undefined ? { 'Content-Type': contentType } : {}),
  });
  return {
    request(method, path, body, contentType = 'application/json', signal) {
      return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        // An explicit length: node sends a DELETE body without one (no chunking for DELETE), and the
        // apiserver would read it as the next request on the kept-alive connection.
        const sent = payload !== undefined ? { ...headers(contentType), 'Content-Length': String(payload.length) } : headers();
        const req = request(
          { host: base.hostname, port: base.port, path, method, agent, headers: sent, timeout: 30_000, ...(signal ? { signal } : {}) },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
        req.on('error', reject);
        req.end(payload);
      });
    },
    watch(path, onEvent, signal) {
      return new Promise((resolve, reject) => {
        const req = request({ host: base.hostname, port: base.port, path, method: 'GET', agent, headers: headers(), signal }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`watch ${path}: HTTP ${res.statusCode}`));
            return;
          }
          let buffered = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffered += chunk;
            let nl: number;
            while ((nl = buffered.indexOf('\n')) >= 0) {
              const line = buffered.slice(0, nl).trim();
              buffered = buffered.slice(nl + 1);
              if (line !== '') onEvent(JSON.parse(line) as WatchEvent);
            }
          });
          res.on('end', () => resolve());
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    },
    close() {
      agent.destroy();
    },
  };
}
