// A fault-injecting HTTP proxy for tests, on 127.0.0.1 in front of a registry: connection resets
// (before or after the upstream handled the request), 5xx answers, 429 with Retry-After, slow
// answers and a forged Docker-Content-Digest. Faults come from a script (exact, for focused tests)
// or at a seeded rate (reproducible soak tests). The Host header is passed through, so the
// registry's absolute Locations point back at the proxy.
import { type IncomingMessage, type ServerResponse, createServer, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';

export type Fault =
  | { kind: 'reset' }
  /** Forward the request, let the registry act on it, then drop the connection instead of answering. */
  | { kind: 'reset-after' }
  | { kind: 'status'; status: number; retryAfter?: string; headers?: Record<string, string> }
  | { kind: 'delay'; ms: number }
  /** Forward, but replace the Docker-Content-Digest response header. */
  | { kind: 'forge-digest'; digest: string };

export interface ScriptedFault {
  /** Which requests it applies to, e.g. `PUT` or `HEAD /v2/x/manifests/`. Matched against `METHOD path`. */
  match: RegExp;
  fault: Fault;
  /** How many matching requests get it (default 1). */
  times?: number;
}

export interface FaultProxyOptions {
  /** http://127.0.0.1:PORT of the registry. */
  upstream: string;
  /** Fraction of requests (0..1) that get a random fault from `randomFaults`. */
  rate?: number;
  seed?: number;
  randomFaults?: Fault[];
}

export interface FaultProxy {
  /** 127.0.0.1:PORT */
  host: string;
  /** Faults to apply, in order of matching; consumed as they fire. */
  script: ScriptedFault[];
  /** `METHOD path -> fault kind | status` for every request seen. */
  log: string[];
  /** Number of faults injected so far. */
  injected: number;
  stop(): Promise<void>;
}

/** mulberry32: tiny, seedable, good enough to spread faults. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DEFAULT_RANDOM_FAULTS: Fault[] = [
  { kind: 'reset' },
  { kind: 'reset-after' },
  { kind: 'status', status: 500 },
  { kind: 'status', status: 502 },
  { kind: 'status', status: 503 },
  { kind: 'status', status: 429, retryAfter: '0' },
  { kind: 'delay', ms: 50 },
];

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  const random = seededRandom(options.seed ?? 1);
  const randomFaults = options.randomFaults ?? DEFAULT_RANDOM_FAULTS;
  const sockets = new Set<Socket>();

  const proxy: FaultProxy = { host: '', script: [], log: [], injected: 0, stop: async () => {} };

  const pickFault = (line: string): Fault | undefined => {
    const index = proxy.script.findIndex((s) => s.match.test(line));
    if (index >= 0) {
      const scripted = proxy.script[index]!;
      const left = (scripted.times ?? 1) - 1;
      if (left <= 0) proxy.script.splice(index, 1);
      else scripted.times = left;
      return scripted.fault;
    }
    if (options.rate !== undefined && options.rate > 0 && random() < options.rate) {
      return randomFaults[Math.floor(random() * randomFaults.length)];
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined, line: string): void => {
    const up = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        if (fault?.kind === 'reset-after') {
          upRes.resume();
          upRes.on('end', () => req.socket.destroy());
          return;
        }
        const headers = { ...upRes.headers };
        if (fault?.kind === 'forge-digest') headers['docker-content-digest'] = fault.digest;
        proxy.log.push(`${line} -> ${upRes.statusCode}`);
        res.writeHead(upRes.statusCode ?? 502, headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => req.socket.destroy());
    req.pipe(up);
  };

  const server = createServer((req, res) => {
    const line = `${req.method} ${req.url?.split('?')[0] ?? ''}`;
    const fault = pickFault(line);
    if (fault !== undefined) proxy.injected++;
    switch (fault?.kind) {
      case 'reset':
        proxy.log.push(`${line} -> reset`);
        req.socket.destroy();
        return;
      case 'status': {
        proxy.log.push(`${line} -> ${fault.status} (injected)`);
        req.resume();
        const headers: Record<string, string> = { 'content-type': 'application/json', connection: 'close' };
        if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
        Object.assign(headers, fault.headers);
        res.writeHead(fault.status, headers).end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected fault' }] }));
        return;
      }
      case 'delay': {
        const timer = setTimeout(() => forward(req, res, undefined, line), fault.ms);
        req.socket.once('close', () => clearTimeout(timer));
        return;
      }
      default:
        if (fault?.kind === 'reset-after') proxy.log.push(`${line} -> reset after upstream`);
        forward(req, res, fault, line);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  proxy.host = `127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  proxy.stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return proxy;
}
