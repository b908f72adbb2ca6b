// A tiny in-process HTTP server on 127.0.0.1 for the registry client's unit tests: each test
// scripts the answers in a handler, and the server records every request it saw (method, URL,
// headers, body) so a test can check what the client sent, and to whom.
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type ScriptedHandler = (req: SeenRequest, res: ServerResponse, raw: IncomingMessage) => void | Promise<void>;

export interface ScriptedServer {
  /** `127.0.0.1:port`, the form a registry name takes. */
  host: string;
  /** `http://127.0.0.1:port`. */
  origin: string;
  requests: SeenRequest[];
  /** Replaces the handler for the requests that follow. */
  handle(handler: ScriptedHandler): void;
  close(): Promise<void>;
}

export async function startScriptedServer(handler: ScriptedHandler = (_req, res) => void res.writeHead(404).end()): Promise<ScriptedServer> {
  let current = handler;
  const requests: SeenRequest[] = [];
  const server = createServer((raw, res) => void answer(raw, res));
  const answer = async (raw: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of raw) chunks.push(chunk as Buffer);
    const seen: SeenRequest = { method: raw.method ?? '', url: raw.url ?? '', headers: raw.headers, body: Buffer.concat(chunks) };
    requests.push(seen);
    try {
      await current(seen, res, raw);
    } catch (err) {
      res.writeHead(599).end(String(err));
    }
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    origin: `http://127.0.0.1:${port}`,
    requests,
    handle(next) {
      current = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Registry error JSON, as the distribution spec words it. */
export function registryErrorBody(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message }] });
}
