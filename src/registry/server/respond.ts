// Small response helpers shared by the handlers: the headers every answer carries, JSON bodies,
// and the spec's error JSON.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, RegistryError } from './errors.js';

/** Sent on every response so tsko can tell its own registry from anything else on the port. */
export const TSKO_REGISTRY_HEADER = 'X-Tsko-Registry';

export function baseHeaders(res: ServerResponse): void {
  res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
  res.setHeader(TSKO_REGISTRY_HEADER, '1');
  res.setHeader('X-Content-Type-Options', 'nosniff');
}

export function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Record<string, string | string[]> = {},
  body?: string | Uint8Array,
  contentType = 'application/json',
): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (body !== undefined) {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    if (!res.hasHeader('Content-Type')) res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', String(bytes.length));
    res.writeHead(status);
    res.end(req.method === 'HEAD' ? undefined : bytes);
    return;
  }
  if (status !== 204 && status !== 304) res.setHeader('Content-Length', '0');
  res.writeHead(status);
  res.end();
}

export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, value: unknown, headers: Record<string, string | string[]> = {}, contentType = 'application/json'): void {
  send(req, res, status, headers, JSON.stringify(value), contentType);
}

export function sendError(req: IncomingMessage, res: ServerResponse, err: RegistryError): void {
  send(req, res, err.status, err.headers, errorBody(err.code, err.message, err.detail));
}

/** Read a whole (small) body, refusing more than `limit` bytes with a 413 before buffering it. */
export async function readSmallBody(req: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(what, limit);
  const chunks: Buffer[] = [];
  let total = 0;
  // Not destroyed when we stop early: the 413 must reach a client still sending (router.ts drains the rest).
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooLarge(what, limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function tooLarge(what: string, limit: number): RegistryError {
  return new RegistryError(413, 'SIZE_INVALID', `${what} is larger than the limit of ${limit} bytes`);
}

/** Does an Accept header admit `mediaType`? No header, or a wildcard, admits everything. */
export function accepts(accept: string | undefined, mediaType: string): boolean {
  if (!accept || accept.trim() === '') return true;
  const wanted = accept
    .split(',')
    .map((part) => part.split(';')[0]?.trim().toLowerCase() ?? '')
    .filter((t) => t !== '');
  if (wanted.length === 0) return true;
  const [family] = mediaType.split('/');
  return wanted.some((t) => t === mediaType || t === '*/*' || t === `${family}/*`);
}
