// The registry transport (src/registry/transport.ts, auth-session.ts, dispatch.ts) against small
// scripted servers on 127.0.0.1: Basic and Bearer challenges, token reuse, sharing and refresh,
// Authorization kept to the registry's own origin, retry classification and the give-up error,
// Retry-After under fake timers, the debug line's redaction and Warning 299 shown once.
import assert from 'node:assert/strict';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, describe, it, mock } from 'node:test';
import { MockAgent } from 'undici';
import { TskoError } from '../../src/errors.js';
import type { Credentials } from '../../src/registry/auth.js';
import { createDispatch, warningText } from '../../src/registry/dispatch.js';
import { RegistryError, discard, httpError } from '../../src/registry/http.js';
import { type Transport, exhausted, retryVerdict } from '../../src/registry/transport.js';
import type { ScriptedHandler, ScriptedServer } from '../support/scripted-server.js';
import { type TestContext, basic, rejection, retryEvents, seen, serve, transportFor } from '../support/transport-fixture.js';

/** One GET through the transport; the status, with the body drained. */
async function get(transport: Transport, registry: string, target: string | URL, scopes: string[] = [], operation = 'GET x'): Promise<number> {
  const res = await transport.send({ registry, method: 'GET', target, scopes, operation });
  await discard(res);
  return res.status;
}

describe('Basic auth', () => {
  /** Anonymous /v2/, everything else behind Basic u:pw. */
  const basicRegistry = (t: TestContext): Promise<ScriptedServer> =>
    serve(t, (req, res) => {
      if (req.url === '/v2/' || req.headers.authorization === basic('u', 'pw')) return void res.writeHead(200).end('{}');
      res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end();
    });

  it('answers a challenge once, then sends the credentials up front', async (t) => {
    const server = await basicRegistry(t);
    const { transport } = transportFor(t, { credentials: async () => ({ username: 'u', password: 'pw' }) });
    assert.equal(await get(transport, server.host, '/v2/a/blobs/x'), 200);
    assert.equal(await get(transport, server.host, '/v2/a/blobs/y'), 200);
    assert.deepEqual(seen(server), ['GET /v2/ -', 'GET /v2/a/blobs/x -', `GET /v2/a/blobs/x ${basic('u', 'pw')}`, `GET /v2/a/blobs/y ${basic('u', 'pw')}`]);
  });

  it('says authentication failed for the registry as the user, and looks the credentials up again next time', async (t) => {
    const server = await basicRegistry(t);
    let lookups = 0;
    const { transport } = transportFor(t, { credentials: async () => (lookups++, { username: 'u', password: 'wrong' }) });
    const err = await rejection(get(transport, server.host, '/v2/a/blobs/x'));
    assert.equal(err.code, 'REGISTRY_AUTH');
    assert.equal(err.message, `authentication failed for ${server.host} as u`);
    await rejection(get(transport, server.host, '/v2/a/blobs/x'));
    assert.equal(lookups, 2);
  });

  it('tells an anonymous caller to log in', async (t) => {
    const server = await basicRegistry(t);
    const { transport } = transportFor(t, { credentials: async () => undefined });
    const err = await rejection(get(transport, server.host, '/v2/a/blobs/x', [], 'HEAD blob a'));
    assert.equal(err.message, `${server.host} requires authentication for HEAD blob a`);
    assert.match(err.hint ?? '', /tsko login/);
    assert.deepEqual(seen(server), ['GET /v2/ -', 'GET /v2/a/blobs/x -'], 'nothing to answer the challenge with, so no second try');
  });

  it('does not remember a credentials lookup that failed', async (t) => {
    const server = await basicRegistry(t);
    let lookups = 0;
    const credentials = async (): Promise<Credentials> => {
      if (++lookups === 1) throw new TskoError('REGISTRY_AUTH', 'docker-credential-gone is not installed');
      return { username: 'u', password: 'pw' };
    };
    const { transport } = transportFor(t, { credentials });
    assert.equal((await rejection(get(transport, server.host, '/v2/a/blobs/x'))).message, 'docker-credential-gone is not installed');
    assert.equal(await get(transport, server.host, '/v2/a/blobs/x'), 200);
  });

  it('refuses a 401 it cannot answer', async (t) => {
    const server = await serve(t, (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Negotiate' }).end());
    const { transport } = transportFor(t, { credentials: async () => ({ username: 'u', password: 'pw' }) });
    const err = await rejection(get(transport, server.host, '/v2/a/blobs/x'));
    assert.match(err.message, /refused GET x \(401\) without a usable WWW-Authenticate challenge/);
  });
});

interface BearerSetup {
  registry: ScriptedServer;
  tokenServer: ScriptedServer;
  /** Tokens the registry accepts now. */
  valid: Set<string>;
  /** Scopes of each token request, in order. */
  tokenScopes: () => string[];
}

/** A registry that wants Bearer tokens from a token server on another port, which issues tok-1, tok-2, … */
async function bearerRegistry(t: TestContext, options: { expiresIn?: number; grant?: 'post' | 'get-only' } = {}): Promise<BearerSetup> {
  const valid = new Set<string>();
  let issued = 0;
  const tokenServer = await serve(t, (req, res) => {
    if (req.method === 'POST' && options.grant !== 'post') return void res.writeHead(404).end();
    const form = req.method === 'POST' ? new URLSearchParams(req.body.toString()) : undefined;
    const authorized = form !== undefined ? form.get('refresh_token') === 'refresh-me' : [basic('u', 'pw'), basic('<token>', 'refresh-me')].includes(req.headers.authorization ?? '');
    if (!authorized) return void res.writeHead(401).end();
    const token = `tok-${++issued}`;
    valid.add(token);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: options.expiresIn ?? 300 }));
  });
  const registry = await serve(t, (req, res) => {
    const token = req.headers.authorization?.replace(/^Bearer /, '');
    if (token !== undefined && valid.has(token)) return void res.writeHead(200).end('{}');
    const error = token !== undefined ? ',error="invalid_token"' : '';
    res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/token",service="svc"${error}` }).end();
  });
  const tokenScopes = (): string[] =>
    tokenServer.requests.map((r) => (r.method === 'POST' ? new URLSearchParams(r.body.toString()).get('scope') ?? '' : new URL(r.url, 'http://x').searchParams.getAll('scope').join(' ')));
  return { registry, tokenServer, valid, tokenScopes };
}

const PULL = 'repository:a/b:pull';
const PUSH = 'repository:a/b:pull,push';
const creds = async (): Promise<Credentials> => ({ username: 'u', password: 'pw' });

describe('Bearer tokens', () => {
  afterEach(() => {
    mock.timers.reset();
  });

  it('fetches a token for the scopes with the credentials, and reuses it for the same or a narrower set', async (t) => {
    const { registry, tokenServer, tokenScopes } = await bearerRegistry(t);
    const { transport } = transportFor(t, { credentials: creds });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/uploads/', [PUSH]), 200);
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PUSH]), 200);
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/y', [PULL]), 200);
    assert.deepEqual(tokenScopes(), [PUSH]);
    const query = new URL(tokenServer.requests[0]!.url, 'http://x').searchParams;
    assert.deepEqual([query.get('service'), query.get('account'), tokenServer.requests[0]!.headers.authorization], ['svc', 'u', basic('u', 'pw')]);
    assert.deepEqual(seen(registry).slice(1), [
      'GET /v2/a/b/blobs/uploads/ Bearer tok-1',
      'GET /v2/a/b/blobs/x Bearer tok-1',
      'GET /v2/a/b/blobs/y Bearer tok-1',
    ]);
  });

  it('shares one exchange among parallel requests', async (t) => {
    const { registry, tokenScopes } = await bearerRegistry(t);
    const { transport } = transportFor(t, { credentials: creds });
    const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => get(transport, registry.host, `/v2/a/b/blobs/${i}`, [PUSH])));
    assert.deepEqual(statuses, Array(8).fill(200));
    assert.deepEqual(tokenScopes(), [PUSH]);
  });

  it('forgets a token the registry refuses and exchanges once more', async (t) => {
    const { registry, valid, tokenScopes } = await bearerRegistry(t);
    const { transport } = transportFor(t, { credentials: creds });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    valid.delete('tok-1');
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    assert.deepEqual(seen(registry).slice(-2), ['GET /v2/a/b/blobs/x Bearer tok-1', 'GET /v2/a/b/blobs/x Bearer tok-2']);
    assert.equal(tokenScopes().length, 2);
  });

  it('never offers a refused token again, even under the wider scope set it was fetched for', async (t) => {
    const { registry, valid } = await bearerRegistry(t);
    const { transport } = transportFor(t, { credentials: creds });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/uploads/', [PUSH]), 200);
    valid.delete('tok-1');
    // The pull,push token serves this pull request, is refused, and a pull token replaces it.
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/uploads/', [PUSH]), 200);
    assert.deepEqual(seen(registry).slice(-3), ['GET /v2/a/b/blobs/x Bearer tok-1', 'GET /v2/a/b/blobs/x Bearer tok-2', 'GET /v2/a/b/blobs/uploads/ Bearer tok-3']);
  });

  it('says the token was refused when a fresh one is refused too', async (t) => {
    const { registry, tokenServer, tokenScopes } = await bearerRegistry(t);
    const { transport } = transportFor(t, { credentials: creds });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    registry.handle((_req, res) => void res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/token",error="invalid_token"` }).end());
    const err = await rejection(get(transport, registry.host, '/v2/a/b/blobs/x', [PULL], 'HEAD blob b'));
    assert.equal(err.message, `${registry.host} refused the token its token server issued for u (invalid_token) during HEAD blob b`);
    assert.deepEqual(seen(registry).slice(-2), ['GET /v2/a/b/blobs/x Bearer tok-1', 'GET /v2/a/b/blobs/x Bearer tok-2']);
    assert.equal(tokenScopes().length, 2);
  });

  it('exchanges again once the token has expired', async (t) => {
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const { registry, tokenScopes } = await bearerRegistry(t, { expiresIn: 60 });
    const { transport } = transportFor(t, { credentials: creds });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    // A 60 s token is dropped 6 s early, so it does not expire between the check and the request.
    mock.timers.tick(53_000);
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    assert.equal(tokenScopes().length, 1);
    mock.timers.tick(2_000);
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    assert.equal(tokenScopes().length, 2);
  });

  it('exchanges an identity token through the OAuth2 refresh grant', async (t) => {
    const { registry, tokenServer } = await bearerRegistry(t, { grant: 'post' });
    const { transport } = transportFor(t, { credentials: async () => ({ username: '<token>', password: 'refresh-me' }) });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    assert.deepEqual(tokenServer.requests.map((r) => `${r.method} ${r.headers.authorization ?? '-'}`), ['POST -']);
    const form = new URLSearchParams(tokenServer.requests[0]!.body.toString());
    assert.deepEqual([form.get('grant_type'), form.get('client_id'), form.get('service'), form.get('scope')], ['refresh_token', 'tsko', 'svc', PULL]);
  });

  it('falls back to GET with Basic when the token server has no OAuth2 grant', async (t) => {
    const { registry, tokenServer } = await bearerRegistry(t, { grant: 'get-only' });
    const { transport } = transportFor(t, { credentials: async () => ({ username: '<token>', password: 'refresh-me' }) });
    assert.equal(await get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]), 200);
    assert.deepEqual(tokenServer.requests.map((r) => `${r.method} ${r.headers.authorization ?? '-'}`), ['POST -', `GET ${basic('<token>', 'refresh-me')}`]);
  });

  it('tells an anonymous caller the token server refused', async (t) => {
    const { registry } = await bearerRegistry(t);
    const { transport } = transportFor(t, { credentials: async () => undefined });
    const err = await rejection(get(transport, registry.host, '/v2/a/b/blobs/x', [PULL]));
    assert.equal(err.message, `${registry.host}'s token server refused anonymous access`);
  });
});

describe('Authorization stays with the registry that challenged', () => {
  it('is not sent to a URL on another origin, even one the registry handed out', async (t) => {
    const registry = await serve(t, (req, res) => {
      if (req.headers.authorization === basic('u', 'pw')) return void res.writeHead(200).end('{}');
      res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const elsewhere = await serve(t, (_req, res) => void res.writeHead(200).end());
    const { transport } = transportFor(t, { credentials: creds });
    assert.equal(await get(transport, registry.host, '/v2/a/blobs/x'), 200);
    // Same host, another port: another origin.
    assert.equal(await get(transport, registry.host, new URL(`${elsewhere.origin}/upload?_state=s`)), 200);
    assert.equal(await get(transport, registry.host, new URL(`${registry.origin}/v2/a/blobs/y`)), 200);
    assert.deepEqual(seen(elsewhere), ['GET /upload?_state=s -']);
    assert.equal(registry.requests.at(-1)!.headers.authorization, basic('u', 'pw'));
  });

  it('answers no 401 from another origin', async (t) => {
    const registry = await serve(t, (_req, res) => void res.writeHead(200).end('{}'));
    const elsewhere = await serve(t, (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="phish"' }).end());
    let lookups = 0;
    const { transport } = transportFor(t, { credentials: async () => (lookups++, { username: 'u', password: 'pw' }) });
    assert.equal(await get(transport, registry.host, new URL(`${elsewhere.origin}/blob`)), 401);
    assert.deepEqual(seen(elsewhere), ['GET /blob -']);
    assert.equal(lookups, 0);
  });
});

describe('retries', () => {
  afterEach(() => {
    mock.timers.reset();
    syncBuiltinESMExports();
  });

  /** An operation as the operations modules write one: a non-200 answer is an error. */
  const getOk = (transport: Transport, registry: string, operation = 'GET x'): Promise<string> =>
    transport.retrying(operation, undefined, async () => {
      const res = await transport.send({ registry, method: 'GET', target: '/v2/x', scopes: [], operation });
      if (res.status !== 200) throw await httpError(res, operation, registry);
      await discard(res);
      return 'ok';
    });

  const scripted = (steps: Array<number | 'drop'>): ScriptedHandler => {
    let i = 0;
    return (req, res, raw) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      const step = steps[Math.min(i++, steps.length - 1)]!;
      if (step === 'drop') return void raw.socket.destroy();
      res.writeHead(step, step === 429 ? { 'retry-after': '0' } : {}).end(step >= 500 ? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'busy' }] }) : '');
    };
  };

  it('retries 5xx, 429 and dropped connections, with an event for each', async (t) => {
    const server = await serve(t, scripted([503, 429, 'drop', 200]));
    const { transport, events } = transportFor(t);
    assert.equal(await getOk(transport, server.host), 'ok');
    const retries = retryEvents(events);
    assert.deepEqual(retries.map((e) => [e.operation, e.attempt]), [['GET x', 1], ['GET x', 2], ['GET x', 3]]);
    assert.deepEqual(retries.slice(0, 2).map((e) => e.cause), ['503', '429']);
    assert.match(retries[2]!.cause, /ECONNRESET|UND_ERR_SOCKET|EPIPE/);
  });

  it('does not retry a 4xx other than 408 and 429', async (t) => {
    const server = await serve(t, scripted([400, 200]));
    const { transport, events } = transportFor(t);
    const err = await rejection(getOk(transport, server.host));
    assert.equal(err.message, `GET x failed: ${server.host} answered 400`);
    assert.equal(retryEvents(events).length, 0);
  });

  it('gives up after the last try, says how often it tried, and no enclosing retry tries again', async (t) => {
    const server = await serve(t, scripted([503]));
    const { transport } = transportFor(t, { retry: { tries: 2, baseDelayMs: 1 } });
    let outer = 0;
    const err = await rejection(transport.retrying('outer', undefined, () => (outer++, getOk(transport, server.host))));
    assert.equal(err.message, `GET x failed: ${server.host} answered 503 UNAVAILABLE: busy (gave up after 2 tries)`);
    assert.ok(err instanceof RegistryError && !err.retryable && err.status === 503);
    assert.equal(outer, 1);
  });

  it('classifies only retryable registry errors, carrying Retry-After', () => {
    const busy = new RegistryError('REGISTRY_HTTP', 'busy', { status: 429, retryable: true, causeCode: '429', retryAfterMs: 3000 });
    assert.deepEqual(retryVerdict(busy), { cause: '429', retryAfterMs: 3000 });
    assert.equal(retryVerdict(new RegistryError('REGISTRY_HTTP', 'no', { status: 400, retryable: false, causeCode: '400' })), undefined);
    assert.equal(retryVerdict(new TskoError('REGISTRY_AUTH', 'denied')), undefined);
    assert.equal((exhausted(busy, 1) as Error).message, 'busy (gave up after 1 try)');
    const final = new TskoError('REGISTRY_AUTH', 'denied');
    assert.equal(exhausted(final, 3), final);
  });

  it('waits as long as Retry-After asks, and no longer', async (t) => {
    let served = 0;
    const server = await serve(t, (req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(++served === 1 ? 429 : 200, { 'retry-after': '5' }).end();
    });
    const { transport, events } = transportFor(t);
    // Retries sleep through node:timers/promises; an ESM import of it sees the mock only after a sync.
    mock.timers.enable({ apis: ['setTimeout'] });
    syncBuiltinESMExports();
    const result = getOk(transport, server.host);
    while (!events.some((e) => e.type === 'retry')) await new Promise((r) => setImmediate(r));
    const retry = events.find((e) => e.type === 'retry')!;
    assert.equal(retry.type === 'retry' && retry.delayMs, 5000);
    mock.timers.tick(4_999);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(served, 1, 'retried before Retry-After ran out');
    mock.timers.tick(1);
    assert.equal(await result, 'ok');
    assert.equal(served, 2);
  });
});

describe('what an exchange leaves behind', () => {
  it('logs each exchange at debug level, with no secret in any event', async (t) => {
    const registry = await serve(t, (req, res) => {
      if (req.headers.authorization === basic('u', 's3cret-pw')) return void res.writeHead(200).end('{}');
      res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const { transport, events } = transportFor(t, { credentials: async () => ({ username: 'u', password: 's3cret-pw' }) });
    assert.equal(await get(transport, registry.host, '/v2/a/blobs/uploads/x?_state=abc&token=t0ps3cret'), 200);
    const debug = events.flatMap((e) => (e.type === 'log' && e.level === 'debug' ? [e.message] : []));
    assert.ok(debug.some((m) => new RegExp(`^GET ${registry.origin}/v2/a/blobs/uploads/x\\?_state=abc&token=\\[REDACTED\\] → 200 \\(\\d+ ms\\)$`).test(m)), debug.join('\n'));
    const all = JSON.stringify(events);
    for (const secret of ['s3cret-pw', basic('u', 's3cret-pw').slice(6), 't0ps3cret']) assert.ok(!all.includes(secret), `leaked ${secret}`);
  });

  it('shows each registry Warning once, per text', async (t) => {
    let n = 0;
    const registry = await serve(t, (_req, res) => {
      res.setHeader('warning', n++ < 3 ? '299 - "repository is \\"deprecated\\""' : '299 - "another thing"');
      res.writeHead(200).end();
    });
    const { transport, events } = transportFor(t);
    for (let i = 0; i < 5; i++) await get(transport, registry.host, '/v2/x');
    const warnings = events.flatMap((e) => (e.type === 'log' && e.level === 'warn' ? [e.message] : []));
    assert.deepEqual(warnings, [`registry warning from ${registry.host}: repository is "deprecated"`, `registry warning from ${registry.host}: another thing`]);
  });

  it('sends a URL on another origin through the verified pool, not the endpoint\'s', async () => {
    const registryPool = new MockAgent();
    const verified = new MockAgent();
    for (const agent of [registryPool, verified]) agent.disableNetConnect();
    verified.get('https://storage.example').intercept({ path: '/blob?sig=x', method: 'GET' }).reply(200, 'bytes');
    const dispatch = createDispatch({ fallback: verified });
    const endpoint = { origin: 'https://reg.example', agent: registryPool, tls: true };
    const res = await dispatch(endpoint, new URL('https://storage.example/blob?sig=x'), { registry: 'reg.example', method: 'GET', target: '', scopes: [], operation: 'GET blob' }, undefined);
    assert.equal(res.status, 200);
    verified.assertNoPendingInterceptors();
  });

  it('reads the text of a 299 Warning and nothing else', () => {
    assert.equal(warningText('299 - "a \\"quoted\\" word"'), 'a "quoted" word');
    assert.equal(warningText('299 registry.example "gone soon" "Wed, 21 Oct 2015 07:28:00 GMT"'), 'gone soon');
    assert.equal(warningText('199 - "miscellaneous"'), undefined);
    assert.equal(warningText('garbage'), undefined);
  });

  it('refuses to send after close()', async (t) => {
    const registry = await serve(t, (_req, res) => void res.writeHead(200).end());
    const { transport } = transportFor(t);
    await transport.close();
    const err = await rejection(get(transport, registry.host, '/v2/x'));
    assert.equal(err.message, 'registry client used after close()');
  });
});
