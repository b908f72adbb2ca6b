// Where the registry client talks to a registry (src/registry/endpoint.ts): plain http first for
// loopback, https then http for insecure registries, verified https for the rest; TLS trust from
// extra CAs or skipped for insecure registries; a probe's 401 challenge handed on; only answers
// remembered. Real servers on 127.0.0.1 where the name allows, undici's MockAgent for other names.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MockAgent } from 'undici';
import type { Challenge } from '../../src/registry/auth.js';
import { createDispatch } from '../../src/registry/dispatch.js';
import { Agents, Endpoints, type EndpointsOptions, isInsecureRegistry } from '../../src/registry/endpoint.js';
import { startScriptedServer } from '../support/scripted-server.js';
import { makeTempDir } from '../support/tmp.js';
import { rejection } from '../support/transport-fixture.js';

function endpointsOver(pools: EndpointsOptions['pools'], extra: Partial<EndpointsOptions> = {}): { endpoints: Endpoints; challenges: Array<[string, Challenge]> } {
  const challenges: Array<[string, Challenge]> = [];
  const endpoints = new Endpoints({
    pools,
    dispatch: createDispatch({ fallback: pools.verified }),
    onChallenge: (registry, challenge) => challenges.push([registry, challenge]),
    ...extra,
  });
  return { endpoints, challenges };
}

function mockPools(): { agent: MockAgent; pools: EndpointsOptions['pools'] } {
  const agent = new MockAgent();
  agent.disableNetConnect();
  return { agent, pools: { verified: agent, insecure: () => agent } };
}

const socketError = (code: string): Error => Object.assign(new Error(`injected ${code}`), { code });

describe('isInsecureRegistry', () => {
  it('matches true, or a listed host:port ignoring case and spaces', () => {
    assert.equal(isInsecureRegistry(true, 'any.example'), true);
    assert.equal(isInsecureRegistry([' Reg.Example:5000 '], 'reg.example:5000'), true);
    assert.equal(isInsecureRegistry(['reg.example:5000'], 'reg.example'), false);
    assert.equal(isInsecureRegistry(false, 'reg.example'), false);
    assert.equal(isInsecureRegistry(undefined, 'reg.example'), false);
  });
});

describe('Endpoints over plain http on loopback', () => {
  it('probes GET /v2/ once over http and remembers the answer', async (t) => {
    const server = await startScriptedServer((_req, res) => void res.writeHead(200).end('{}'));
    const agents = new Agents();
    t.after(() => Promise.all([server.close(), agents.close()]));
    const { endpoints } = endpointsOver(agents);
    const first = await endpoints.resolve(server.host, 'op', undefined);
    assert.deepEqual({ origin: first.origin, tls: first.tls }, { origin: server.origin, tls: false });
    assert.equal(first.agent, agents.verified);
    assert.equal(await endpoints.resolve(server.host, 'op', undefined), first);
    assert.deepEqual(server.requests.map((r) => `${r.method} ${r.url} ${r.headers.authorization ?? '-'}`), ['GET /v2/ -']);
  });

  it('hands on the challenge a probe is answered with, Bearer before Basic', async (t) => {
    const server = await startScriptedServer((_req, res) => {
      res.setHeader('www-authenticate', ['Basic realm="r"', 'Bearer realm="http://127.0.0.1:1/token",service="svc"']);
      res.writeHead(401).end();
    });
    const agents = new Agents();
    t.after(() => Promise.all([server.close(), agents.close()]));
    const { endpoints, challenges } = endpointsOver(agents);
    await endpoints.resolve(server.host, 'op', undefined);
    assert.deepEqual(challenges, [[server.host, { scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/token', service: 'svc' } }]]);
  });

  it('switches to https when a plain-http probe hears Go\'s "HTTPS server" 400', async () => {
    const { agent, pools } = mockPools();
    const { endpoints } = endpointsOver(pools);
    agent.get('http://localhost:5000').intercept({ path: '/v2/', method: 'GET' }).reply(400, 'Client sent an HTTP request to an HTTPS server.\n');
    agent.get('https://localhost:5000').intercept({ path: '/v2/', method: 'GET' }).reply(200, '{}');
    const endpoint = await endpoints.resolve('localhost:5000', 'op', undefined);
    assert.deepEqual({ origin: endpoint.origin, tls: endpoint.tls }, { origin: 'https://localhost:5000', tls: true });
    agent.assertNoPendingInterceptors();
  });

  it('remembers only an answer: a refused probe is tried again next time', async () => {
    const { agent, pools } = mockPools();
    const { endpoints } = endpointsOver(pools);
    const http = agent.get('http://127.0.0.1:5999');
    http.intercept({ path: '/v2/', method: 'GET' }).replyWithError(socketError('ECONNREFUSED'));
    agent.get('https://127.0.0.1:5999').intercept({ path: '/v2/', method: 'GET' }).reply(200, '{}');
    const err = await rejection(endpoints.resolve('127.0.0.1:5999', 'HEAD blob x', undefined));
    assert.equal(err.code, 'REGISTRY_UNREACHABLE');
    assert.equal(err.message, 'cannot reach 127.0.0.1:5999 for HEAD blob x: connection refused');
    // Refused is decisive: https is not tried (its answer is still waiting).
    assert.equal(agent.pendingInterceptors().length, 1);
    http.intercept({ path: '/v2/', method: 'GET' }).reply(200, '{}');
    assert.equal((await endpoints.resolve('127.0.0.1:5999', 'op', undefined)).origin, 'http://127.0.0.1:5999');
  });
});

describe('Endpoints for other registries', () => {
  it('uses verified https without a probe for a registry not marked insecure', async () => {
    const { agent, pools } = mockPools();
    const { endpoints } = endpointsOver(pools);
    const endpoint = await endpoints.resolve('gcr.io', 'op', undefined);
    assert.deepEqual({ origin: endpoint.origin, tls: endpoint.tls }, { origin: 'https://gcr.io', tls: true });
    agent.assertNoPendingInterceptors();
  });

  it('tries https first for an insecure registry, then http after a non-decisive failure', async () => {
    const { agent, pools } = mockPools();
    let insecureAsked = 0;
    const { endpoints } = endpointsOver({ verified: pools.verified, insecure: () => (insecureAsked++, agent) }, { insecureRegistries: ['reg.example:5000'] });
    agent.get('https://reg.example:5000').intercept({ path: '/v2/', method: 'GET' }).replyWithError(socketError('ECONNRESET'));
    agent.get('http://reg.example:5000').intercept({ path: '/v2/', method: 'GET' }).reply(200, '{}');
    const endpoint = await endpoints.resolve('reg.example:5000', 'op', undefined);
    assert.deepEqual({ origin: endpoint.origin, tls: endpoint.tls }, { origin: 'http://reg.example:5000', tls: false });
    assert.equal(insecureAsked, 1, 'https went through the unverified pool');
    agent.assertNoPendingInterceptors();
  });

  it('reports the first scheme\'s error when neither answers', async () => {
    const { agent, pools } = mockPools();
    const { endpoints } = endpointsOver(pools, { insecureRegistries: true });
    agent.get('https://reg.example').intercept({ path: '/v2/', method: 'GET' }).replyWithError(socketError('ETIMEDOUT'));
    agent.get('http://reg.example').intercept({ path: '/v2/', method: 'GET' }).replyWithError(socketError('ECONNRESET'));
    const err = await rejection(endpoints.resolve('reg.example', 'op', undefined));
    assert.equal(err.message, 'cannot reach reg.example for op: ETIMEDOUT');
  });
});

describe('Endpoints and TLS on loopback', () => {
  let dir: string;
  let ca: string;
  let host: string;
  let server: ReturnType<typeof createHttpsServer>;
  const agents: Agents[] = [];
  const seen: string[] = [];

  before(async () => {
    dir = await makeTempDir('endpoint-tls');
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    ca = readFileSync(cert, 'utf8');
    server = createHttpsServer({ key: readFileSync(key), cert: ca }, (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200).end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const agentsWith = (options: ConstructorParameters<typeof Agents>[0]): Agents => {
    const a = new Agents(options);
    agents.push(a);
    return a;
  };

  it('refuses an untrusted certificate at once, saying how to trust it', async () => {
    const { endpoints } = endpointsOver(agentsWith({}));
    const err = await rejection(endpoints.resolve(host, 'op', undefined));
    assert.equal(err.code, 'REGISTRY_UNREACHABLE');
    assert.match(err.message, new RegExp(`^TLS verification failed for ${host} during op \\(`));
    assert.match(err.hint ?? '', /registry\.caFile|NODE_EXTRA_CA_CERTS/);
  });

  it('trusts the certificate through caCertificates, over https', async () => {
    const trusting = agentsWith({ caCertificates: [ca] });
    const { endpoints } = endpointsOver(trusting);
    const endpoint = await endpoints.resolve(host, 'op', undefined);
    assert.deepEqual({ origin: endpoint.origin, tls: endpoint.tls }, { origin: `https://${host}`, tls: true });
    assert.equal(endpoint.agent, trusting.verified);
  });

  it('skips verification for an insecure registry, with a pool of its own', async () => {
    const insecure = agentsWith({});
    const { endpoints } = endpointsOver(insecure, { insecureRegistries: [host] });
    const endpoint = await endpoints.resolve(host, 'op', undefined);
    assert.equal(endpoint.origin, `https://${host}`);
    assert.equal(endpoint.agent, insecure.insecure());
    assert.notEqual(endpoint.agent, insecure.verified);
    assert.ok(seen.includes('GET /v2/'));
  });
});
