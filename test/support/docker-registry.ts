// Test harness: a real registry (Debian's docker-registry, distribution 2.8.2) on a free port of
// 127.0.0.1 with filesystem storage in a temp dir, in one of three auth modes (none, htpasswd
// Basic, token with a local ES256 token server) and optionally behind TLS with a self-signed cert.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync, rmSync } from 'node:fs';
import { startTokenServer, type TokenServer } from './token-server.js';

export const DOCKER_REGISTRY_BIN = '/usr/bin/docker-registry';

export interface DockerRegistryOptions {
  auth?: 'none' | 'htpasswd' | 'token';
  tls?: boolean;
  /** Ask for path-only Location headers (`http.relativeurls`). */
  relativeUrls?: boolean;
}

export interface DockerRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  /** http(s)://127.0.0.1:PORT */
  url: string;
  dir: string;
  username?: string;
  password?: string;
  /** The self-signed certificate (PEM file) when tls is on. */
  caFile?: string;
  /** The token server, in token mode. */
  tokenServer?: TokenServer;
  /** What the registry wrote to stdout/stderr so far, for failing tests. */
  logs(): string;
  stop(): Promise<void>;
}

export const TEST_USERNAME = 'testuser';

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Status of GET url, or undefined when nothing answers. */
function probe(url: string, ca: string | undefined): Promise<number | undefined> {
  return new Promise((resolve) => {
    const isHttps = url.startsWith('https:');
    const req = (isHttps ? httpsRequest : httpRequest)(url, { timeout: 1000, ...(isHttps && ca !== undefined ? { ca } : {}) }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

function selfSignedTlsCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore', timeout: 30_000 });
  return { cert, key };
}

async function startOnce(options: DockerRegistryOptions, dir: string, port: number, tokenServer: TokenServer | undefined): Promise<DockerRegistry> {
  const auth = options.auth ?? 'none';
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log: {level: info, accesslog: {disabled: true}}',
    'storage:',
    `  filesystem: {rootdirectory: ${yamlString(join(dir, 'data'))}}`,
    '  delete: {enabled: true}',
    '  cache: {blobdescriptor: inmemory}',
    'http:',
    `  addr: ${host}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    '  headers: {X-Content-Type-Options: [nosniff]}',
    '  debug: {addr: ""}',
  ];
  if (options.relativeUrls === true) lines.push('  relativeurls: true');
  let caFile: string | undefined;
  if (options.tls === true) {
    const { cert, key } = selfSignedTlsCert(dir);
    lines.push(`  tls: {certificate: ${yamlString(cert)}, key: ${yamlString(key)}}`);
    caFile = cert;
  }
  let username: string | undefined;
  let password: string | undefined;
  if (auth === 'htpasswd') {
    username = TEST_USERNAME;
    password = randomBytes(12).toString('hex');
    const file = join(dir, 'htpasswd');
    const entry = execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8', timeout: 30_000 }).trim();
    await writeFile(file, `${entry}\n`);
    lines.push('auth:', `  htpasswd: {realm: test-realm, path: ${yamlString(file)}}`);
  } else if (auth === 'token') {
    if (tokenServer === undefined) throw new Error('token mode needs a token server');
    username = tokenServer.username;
    password = tokenServer.password;
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${yamlString(tokenServer.realm)}`,
      `    service: ${yamlString(tokenServer.service)}`,
      `    issuer: ${yamlString(tokenServer.issuer)}`,
      `    rootcertbundle: ${yamlString(tokenServer.certFile)}`,
    );
  }
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, `${lines.join('\n')}\n`);

  let output = '';
  const child: ChildProcess = spawn(DOCKER_REGISTRY_BIN, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-64 * 1024);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', (err) => {
      output += `\nspawn error: ${err.message}`;
      exited = true;
      resolve();
    });
  });

  const scheme = options.tls === true ? 'https' : 'http';
  const url = `${scheme}://${host}`;
  const ca = caFile !== undefined ? readFileSync(caFile, 'utf8') : undefined;
  const deadline = Date.now() + 15_000;
  let status: number | undefined;
  while (!exited && Date.now() < deadline) {
    status = await probe(`${url}/v2/`, ca);
    if (status !== undefined) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  // A test that dies before stop() must not leave a registry running.
  const killAtExit = (): void => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', killAtExit);
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killAtExit);
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(timer);
    }
  };
  if (status === undefined) {
    await stop();
    throw new Error(`docker-registry did not answer on ${url} (exited: ${exited}):\n${output}`);
  }
  return {
    host,
    url,
    dir,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(tokenServer !== undefined ? { tokenServer } : {}),
    logs: () => output,
    stop,
  };
}

/** Starts docker-registry; retries a couple of times in case the free port was taken meanwhile. */
export async function startDockerRegistry(options: DockerRegistryOptions = {}): Promise<DockerRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'tsko-registry-'));
  let tokenServer: TokenServer | undefined;
  try {
    if (options.auth === 'token') tokenServer = await startTokenServer({ dir });
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const registry = await startOnce(options, dir, await freePort(), tokenServer);
        const ts = tokenServer;
        const removeAtExit = (): void => rmSync(dir, { recursive: true, force: true });
        process.once('exit', removeAtExit);
        return {
          ...registry,
          stop: async () => {
            process.removeListener('exit', removeAtExit);
            await registry.stop();
            await ts?.stop();
            await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
          },
        };
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  } catch (err) {
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
