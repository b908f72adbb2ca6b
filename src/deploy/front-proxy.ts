// The local target's stable front port: a small reverse proxy on node:http that sends each request
// to the revision that was current when the request arrived. Switching is one assignment, so a
// request goes wholly to the old or wholly to the new revision; requests in flight are counted per
// upstream, so an old revision is stopped only after they are done (or a grace period ends).
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { TskoError } from '../errors.js';

export interface Upstream {
  /** The revision's name, shown in errors. */
  name: string;
  /** Its port on 127.0.0.1. */
  port: number;
}

/** How a revision that was serving ended on its own, for the page the front port answers with. */
export interface CrashReport {
  code: number | null;
  signal: string | null;
  /** Its last log lines, oldest first. */
  lastLines: string[];
}

export interface FrontProxyOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

interface UpstreamState extends Upstream {
  agent: Agent;
  inFlight: number;
  idle: Set<() => void>;
  /** How its process ended, once it has gone. */
  down: CrashReport | undefined;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are not forwarded.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

export class FrontProxy {
  readonly host: string;
  private boundPort = 0;
  private readonly server: Server;
  private readonly upstreams = new Map<string, UpstreamState>();
  private readonly upgraded = new Set<Duplex>();
  private active: UpstreamState | undefined;
  private closing: Promise<void> | undefined;

  private constructor(host: string) {
    this.host = host;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
    // After listen, a server error must not crash tsko: the proxy keeps serving what it can.
    this.server.on('error', () => undefined);
  }

  /** Binds the front port; a busy port is a DEPLOY error that says which and how to pick another. */
  static async listen(options: FrontProxyOptions): Promise<FrontProxy> {
    const proxy = new FrontProxy(options.host);
    const shown = `${options.host}:${options.port}`;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        proxy.server.off('listening', onListening);
        if (err.code === 'EADDRINUSE') {
          reject(new TskoError('DEPLOY', `cannot serve on ${shown}: the port is already in use`, {
            hint: 'stop whatever holds it, or choose another front port with --port',
            cause: err,
          }));
        } else if (err.code === 'EACCES') {
          reject(new TskoError('DEPLOY', `cannot serve on ${shown}: permission denied`, { hint: 'choose a port above 1023 with --port', cause: err }));
        } else {
          reject(new TskoError('DEPLOY', `cannot serve on ${shown}: ${err.message}`, { cause: err }));
        }
      };
      const onListening = () => {
        proxy.server.off('error', onError);
        resolve();
      };
      proxy.server.once('error', onError);
      proxy.server.once('listening', onListening);
      proxy.server.listen(options.port, options.host);
    });
    const address = proxy.server.address();
    proxy.boundPort = typeof address === 'object' && address !== null ? address.port : options.port;
    return proxy;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `http://${this.host}:${this.boundPort}`;
  }

  /** The upstream new requests go to. */
  current(): string | undefined {
    return this.active?.name;
  }

  /**
   * From now on, new requests go to `upstream` (none: answered 503 as before the first revision);
   * those in flight finish where they are.
   */
  switchTo(upstream: Upstream | undefined): void {
    if (!upstream) {
      this.active = undefined;
      return;
    }
    let state = this.upstreams.get(upstream.name);
    if (!state) {
      // keepAlive: a warm connection per revision saves a TCP handshake per proxied request.
      state = { ...upstream, agent: new Agent({ keepAlive: true }), inFlight: 0, idle: new Set(), down: undefined };
      this.upstreams.set(upstream.name, state);
    }
    this.active = state;
  }

  inFlight(name: string): number {
    return this.upstreams.get(name)?.inFlight ?? 0;
  }

  /** Resolves true once `name` has no request in flight, false if `timeoutMs` passes first. */
  drained(name: string, timeoutMs: number): Promise<boolean> {
    const state = this.upstreams.get(name);
    if (!state || state.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        state.idle.delete(onIdle);
        resolve(idle);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      state.idle.add(onIdle);
    });
  }

  /** The upstream's process is gone: answer its requests at once with a 503 page naming the crash. */
  markDown(name: string, crash: CrashReport): void {
    const state = this.upstreams.get(name);
    if (state) state.down = crash;
  }

  /** Forgets an upstream that is no longer current (after its revision stopped). */
  release(name: string): void {
    const state = this.upstreams.get(name);
    if (!state || state === this.active) return;
    state.agent.destroy();
    this.upstreams.delete(name);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.active = undefined;
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const socket of this.upgraded) socket.destroy();
      for (const state of this.upstreams.values()) state.agent.destroy();
    });
    return this.closing;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const upstream = this.active;
    if (!upstream) {
      plain(res, 503, 'tsko: no revision is serving yet; the first deploy is still on its way\n', { 'retry-after': '1' });
      return;
    }
    if (upstream.down !== undefined) {
      crashPage(req, res, upstream.name, upstream.down);
      return;
    }
    track(upstream, res);
    this.forward(req, res, upstream, true);
  }

  private forward(req: IncomingMessage, res: ServerResponse, upstream: UpstreamState, mayRetry: boolean): void {
    const bodiless = hasNoBody(req.headers);
    const upstreamReq = httpRequest({
      host: '127.0.0.1',
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: forwardedRequestHeaders(req),
      setHost: false,
      agent: upstream.agent,
    });
    upstreamReq.once('response', (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, withoutHopByHop(upstreamRes.rawHeaders, upstreamRes.headers));
      upstreamRes.on('error', () => res.destroy());
      upstreamRes.pipe(res);
    });
    upstreamReq.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A kept-alive connection the revision closed just as we reused it: try once on a new one,
      // which is safe only when there is no body already half sent.
      if (mayRetry && bodiless && upstreamReq.reusedSocket && err.code === 'ECONNRESET') {
        this.forward(req, res, upstream, false);
        return;
      }
      plain(res, 502, `tsko: revision ${upstream.name} did not answer (${err.code ?? err.message})\n`);
    });
    res.once('close', () => {
      // The client went away before the answer was complete: stop the upstream request too.
      if (!res.writableFinished) upstreamReq.destroy();
    });
    if (bodiless) upstreamReq.end();
    else req.pipe(upstreamReq);
  }

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const upstream = this.active;
    if (!upstream || upstream.down !== undefined) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.upgraded.add(socket);
    track(upstream, socket);
    socket.once('close', () => this.upgraded.delete(socket));
    const upstreamReq = httpRequest({
      host: '127.0.0.1',
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.rawHeaders,
      setHost: false,
      agent: false,
    });
    upstreamReq.once('upgrade', (upstreamRes, upstreamSocket, upstreamHead) => {
      upstreamSocket.on('error', () => socket.destroy());
      socket.on('error', () => upstreamSocket.destroy());
      socket.once('close', () => upstreamSocket.destroy());
      upstreamSocket.once('close', () => socket.destroy());
      socket.write(statusLine(upstreamRes) + headerLines(upstreamRes.rawHeaders) + '\r\n');
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.pipe(socket).pipe(upstreamSocket);
    });
    upstreamReq.once('response', (upstreamRes) => {
      // The revision declined the upgrade: relay its answer as it is and close.
      socket.write(statusLine(upstreamRes) + headerLines(upstreamRes.rawHeaders) + '\r\n');
      upstreamRes.pipe(socket);
    });
    upstreamReq.on('error', () => {
      socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
    upstreamReq.end();
  }
}

/** Counts a request against its upstream until its response (or socket) closes. */
function track(upstream: UpstreamState, closer: { once(event: 'close', fn: () => void): unknown }): void {
  upstream.inFlight++;
  let released = false;
  closer.once('close', () => {
    if (released) return;
    released = true;
    upstream.inFlight--;
    if (upstream.inFlight === 0) for (const onIdle of [...upstream.idle]) onIdle();
  });
}

function hasNoBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] === undefined && (headers['content-length'] === undefined || headers['content-length'] === '0');
}

function forwardedRequestHeaders(req: IncomingMessage): string[] {
  const headers = withoutHopByHop(req.rawHeaders, req.headers);
  const forwardedFor = req.headers['x-forwarded-for'];
  const client = req.socket.remoteAddress ?? '127.0.0.1';
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (name !== 'x-forwarded-for' && name !== 'x-forwarded-proto') kept.push(headers[i] as string, headers[i + 1] as string);
  }
  kept.push('X-Forwarded-For', forwardedFor ? `${forwardedFor}, ${client}` : client, 'X-Forwarded-Proto', 'http');
  return kept;
}

/** Raw headers (name, value, name, value…) minus hop-by-hop ones and those `Connection` names. */
function withoutHopByHop(raw: readonly string[], parsed: IncomingHttpHeaders): string[] {
  const drop = new Set(HOP_BY_HOP);
  const connection = parsed.connection;
  if (typeof connection === 'string') for (const name of connection.split(',')) drop.add(name.trim().toLowerCase());
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!drop.has((raw[i] as string).toLowerCase())) out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

function statusLine(res: IncomingMessage): string {
  return `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
}

function headerLines(raw: readonly string[]): string {
  let out = '';
  for (let i = 0; i + 1 < raw.length; i += 2) out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return out;
}

/** How a crashed revision ended, in words: `exited with code 2`, `was killed by SIGKILL`. */
export function describeExit(crash: Pick<CrashReport, 'code' | 'signal'>): string {
  return crash.signal ? `was killed by ${crash.signal}` : `exited with code ${crash.code ?? 'unknown'}`;
}

/**
 * 503, not 502: the front port itself is fine and knows why nothing answers. A browser gets a
 * small HTML page, anything else (curl, a test) the same text plain.
 */
function crashPage(req: IncomingMessage, res: ServerResponse, name: string, crash: CrashReport): void {
  const title = `tsko: revision ${name} crashed (it ${describeExit(crash)})`;
  const advice = 'Save a file or press r in tsko dev to restart it.';
  const lines = crash.lastLines.length > 0 ? crash.lastLines : ['(it printed nothing)'];
  const extra = { 'retry-after': '1' };
  if (!/\btext\/html\b/.test(req.headers.accept ?? '')) {
    plain(res, 503, `${title}\n${advice}\n\nLast log lines:\n${lines.join('\n')}\n`, extra);
    return;
  }
  const html =
    `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(advice)}</p>` +
    `<h2>Last log lines</h2><pre>${escapeHtml(lines.join('\n'))}</pre>\n`;
  send(res, 503, 'text/html; charset=utf-8', html, extra);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  send(res, status, 'text/plain; charset=utf-8', text, extra);
}

function send(res: ServerResponse, status: number, contentType: string, text: string, extra: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store', ...extra });
  res.end(text);
}
