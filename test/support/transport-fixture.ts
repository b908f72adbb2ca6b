// What the registry client's tests share: a transport with fast retries that records its
// events, a scripted server closed with the test, and the rejection a call ended in.
import assert from 'node:assert/strict';
import { TskoError } from '../../src/errors.js';
import { type TskoEvent, createEventBus } from '../../src/events.js';
import { type Transport, type TransportOptions, createTransport } from '../../src/registry/transport.js';
import { type ScriptedHandler, type ScriptedServer, startScriptedServer } from './scripted-server.js';

export interface TestContext {
  after(fn: () => unknown): void;
}

export function transportFor(t: TestContext, options: TransportOptions = {}): { transport: Transport; events: TskoEvent[] } {
  const bus = createEventBus();
  const events: TskoEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const transport = createTransport({ events: bus, retry: { baseDelayMs: 1 }, ...options });
  t.after(() => transport.close());
  return { transport, events };
}

export async function serve(t: TestContext, handler?: ScriptedHandler): Promise<ScriptedServer> {
  const server = await startScriptedServer(handler);
  t.after(() => server.close());
  return server;
}

/** A registry that answers the `GET /v2/` probe and leaves every other request to `handler`. */
export function serveRegistry(t: TestContext, handler: ScriptedHandler): Promise<ScriptedServer> {
  return serve(t, (req, res, raw) => (req.url === '/v2/' ? void res.writeHead(200).end('{}') : handler(req, res, raw)));
}

export async function rejection(promise: Promise<unknown>): Promise<TskoError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TskoError, `expected a TskoError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    return err;
  }
  assert.fail('expected a rejection');
}

/** `METHOD url authorization` of each request a server saw, `-` for none. */
export const seen = (server: ScriptedServer): string[] => server.requests.map((r) => `${r.method} ${r.url} ${r.headers.authorization ?? '-'}`);

export const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export function retryEvents(events: TskoEvent[]): Array<Extract<TskoEvent, { type: 'retry' }>> {
  return events.flatMap((e) => (e.type === 'retry' ? [e] : []));
}
