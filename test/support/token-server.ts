// A Docker token-auth server for tests (distribution's auth/token spec): checks Basic credentials,
// grants the requested repository scopes (anonymous callers get pull only) and signs an ES256 JWT
// that docker-registry 2.8.2 accepts (x5c chain to the rootcertbundle, r‖s signature, aud string).
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { join } from 'node:path';

export interface TokenRequestRecord {
  scopes: string[];
  service: string | undefined;
  account: string | undefined;
  /** The user whose Basic credentials were accepted; undefined for anonymous requests. */
  user: string | undefined;
  /** True when Basic credentials were sent but wrong. */
  rejected: boolean;
  /** `GET` (docker token protocol) or `POST` (OAuth2 refresh-token grant). */
  method: string;
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  username: string;
  password: string;
  /** An OAuth2 refresh token accepted by POST /token (grant_type=refresh_token) for `username`. */
  refreshToken: string;
  /** Every token request, in order. */
  requests: TokenRequestRecord[];
  /** Every token issued, in order, so tests can check none leaks into output. */
  issued: string[];
  /** Lifetime given to new tokens, in seconds (tests shorten it). */
  expiresIn: number;
  /** The next this-many tokens are issued already expired (beyond the registry's 60 s leeway) while advertising a normal lifetime. */
  expiredTokens: number;
  /** Like expiredTokens, but only for tokens that grant push: a token that expires mid-push. */
  expiredPushTokens: number;
  stop(): Promise<void>;
}

export interface TokenServerOptions {
  dir: string;
  service?: string;
  issuer?: string;
  expiresIn?: number;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  // `repository:<name>:<actions>`; the name itself may hold a `:port`-free path only.
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter((a) => a !== '') };
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const keyFile = join(options.dir, 'token-key.pem');
  const certFile = join(options.dir, 'token-cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-subj', '/CN=test-token-issuer', '-days', '2',
  ], { stdio: 'ignore', timeout: 30_000 });
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const service = options.service ?? 'test-registry';
  const issuer = options.issuer ?? 'test-issuer';
  const username = 'testuser';
  const password = randomBytes(12).toString('hex');
  const refreshToken = randomBytes(12).toString('hex');
  const requests: TokenRequestRecord[] = [];
  const issued: string[] = [];

  const state = { expiresIn: options.expiresIn ?? 300, expiredTokens: 0, expiredPushTokens: 0 };

  const handle = (req: IncomingMessage, res: ServerResponse, form: URLSearchParams | undefined): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      res.writeHead(404).end();
      return;
    }
    const params = form ?? url.searchParams;
    const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const record: TokenRequestRecord = {
      scopes,
      service: params.get('service') ?? undefined,
      account: params.get('account') ?? undefined,
      user: undefined,
      rejected: false,
      method: req.method,
    };
    requests.push(record);
    if (form !== undefined) {
      if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== refreshToken) {
        record.rejected = true;
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
        return;
      }
      record.user = username;
    }
    const authz = req.headers.authorization;
    if (form === undefined && authz !== undefined) {
      const m = /^Basic\s+(.+)$/i.exec(authz);
      const decoded = m?.[1] !== undefined ? Buffer.from(m[1], 'base64').toString('utf8') : '';
      if (decoded !== `${username}:${password}`) {
        record.rejected = true;
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      record.user = username;
    }
    const access = scopes
      .map(parseScope)
      .filter((s): s is NonNullable<typeof s> => s !== undefined && s.type === 'repository')
      .map((s) => ({ type: 'repository', name: s.name, actions: record.user !== undefined ? s.actions : s.actions.filter((a) => a === 'pull') }));
    let now = Math.floor(Date.now() / 1000);
    if (state.expiredTokens > 0) {
      state.expiredTokens--;
      now -= state.expiresIn + 600;
    } else if (state.expiredPushTokens > 0 && access.some((a) => a.actions.includes('push'))) {
      state.expiredPushTokens--;
      now -= state.expiresIn + 600;
    }
    const headerPart = base64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c: [certDer.toString('base64')] }));
    const claims = {
      iss: issuer,
      sub: record.user ?? '',
      aud: service,
      exp: now + state.expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signingInput = `${headerPart}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
    const token = `${signingInput}.${base64url(signature)}`;
    issued.push(token);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: state.expiresIn, issued_at: new Date().toISOString() }));
  };

  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      handle(req, res, undefined);
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => handle(req, res, new URLSearchParams(body)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const tokenServer: TokenServer = {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    username,
    password,
    refreshToken,
    requests,
    issued,
    get expiresIn() {
      return state.expiresIn;
    },
    set expiresIn(v: number) {
      state.expiresIn = v;
    },
    get expiredTokens() {
      return state.expiredTokens;
    },
    set expiredTokens(v: number) {
      state.expiredTokens = v;
    },
    get expiredPushTokens() {
      return state.expiredPushTokens;
    },
    set expiredPushTokens(v: number) {
      state.expiredPushTokens = v;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return tokenServer;
}
