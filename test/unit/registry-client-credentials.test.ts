// Units under the registry client: docker config.json credential lookup (auths keys, helpers run
// for real as scripts on PATH), WWW-Authenticate parsing, token realm checks, the token cache and
// the retry loop.
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TskoError } from '../../src/errors.js';
import { TokenCache, mergeScopes, parseTokenResponse, parseWwwAuthenticate, realmProblem } from '../../src/registry/auth.js';
import { configKeyHost, lookupCredentials } from '../../src/registry/credentials.js';
import { backoffDelay, parseRetryAfter, withRetry } from '../../src/registry/retry.js';
import { makeTempDir } from '../support/tmp.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function configDir(t: { after(fn: () => unknown): void }, config: unknown): Promise<string> {
  const dir = await makeTempDir('docker-config', t);
  await writeFile(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

describe('lookupCredentials', () => {
  it('finds auths entries under host, https://host and Docker Hub keys', async (t) => {
    const dir = await configDir(t, {
      auths: {
        'gcr.io': { auth: b64('a:pa:ss') },
        'https://127.0.0.1:5000': { username: 'u', password: 'p' },
        'https://index.docker.io/v1/': { auth: b64('hub:hp') },
        'empty.example': {},
        'ghcr.io': { auth: b64('x:y'), identitytoken: 'refresh-me' },
      },
    });
    const env = { DOCKER_CONFIG: dir };
    assert.deepEqual(await lookupCredentials('gcr.io', { env }), { username: 'a', password: 'pa:ss' });
    assert.deepEqual(await lookupCredentials('127.0.0.1:5000', { env }), { username: 'u', password: 'p' });
    assert.equal(await lookupCredentials('127.0.0.1:5001', { env }), undefined);
    assert.deepEqual(await lookupCredentials('index.docker.io', { env }), { username: 'hub', password: 'hp' });
    assert.equal(await lookupCredentials('empty.example', { env }), undefined);
    assert.deepEqual(await lookupCredentials('ghcr.io', { env }), { username: '<token>', password: 'refresh-me' });
    assert.equal(await lookupCredentials('other.example', { env }), undefined);
  });

  it('reads ~/.docker/config.json when DOCKER_CONFIG is unset, and nothing when there is no file', async (t) => {
    const home = await makeTempDir('home', t);
    assert.equal(await lookupCredentials('gcr.io', { env: {}, homedir: home }), undefined);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(home, '.docker'));
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'gcr.io': { auth: b64('x:y') } } }));
    assert.deepEqual(await lookupCredentials('gcr.io', { env: {}, homedir: home }), { username: 'x', password: 'y' });
  });

  it('reports a malformed config in one line', async (t) => {
    const dir = await configDir(t, '{ not json');
    await assert.rejects(lookupCredentials('gcr.io', { env: { DOCKER_CONFIG: dir } }), (err: unknown) => err instanceof TskoError && err.code === 'REGISTRY_AUTH' && /malformed docker config/.test(err.message));
  });

  it('runs credHelpers before credsStore, with the host on stdin', async (t) => {
    const bin = await makeTempDir('helpers', t);
    const script = (name: string, body: string): Promise<void> =>
      writeFile(join(bin, `docker-credential-${name}`), `#!/bin/sh\nread host\n${body}\n`).then(() => chmod(join(bin, `docker-credential-${name}`), 0o755));
    await script('fake', 'case "$host" in\n  reg.example:5000) echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"s3cret\\"}";;\n  *) echo "credentials not found in native keychain"; exit 1;;\nesac');
    await script('store', 'echo "{\\"Username\\":\\"store-user\\",\\"Secret\\":\\"$host\\"}"');
    await script('garbage', 'echo "this is not json"');
    const dir = await configDir(t, {
      credHelpers: { 'reg.example:5000': 'fake', 'nf.example': 'fake', 'bad.example': 'garbage', 'gone.example': 'missing' },
      credsStore: 'store',
    });
    const env = { DOCKER_CONFIG: dir, PATH: `${bin}:/usr/bin:/bin` };
    assert.deepEqual(await lookupCredentials('reg.example:5000', { env }), { username: 'helper-user', password: 's3cret' });
    assert.equal(await lookupCredentials('nf.example', { env }), undefined);
    assert.deepEqual(await lookupCredentials('other.example', { env }), { username: 'store-user', password: 'other.example' });
    // Docker Hub's helper key is the v1 URL.
    assert.deepEqual(await lookupCredentials('index.docker.io', { env }), { username: 'store-user', password: 'https://index.docker.io/v1/' });
    await assert.rejects(lookupCredentials('bad.example', { env }), /docker-credential-garbage printed something that is not JSON/);
    await assert.rejects(lookupCredentials('gone.example', { env }), /docker-credential-missing is not installed/);
  });

  it('falls back to gcloud or a service-account key for Google registries only', async (t) => {
    const bin = await makeTempDir('gcloud', t);
    await writeFile(join(bin, 'gcloud'), '#!/bin/sh\n[ "$1 $2" = "auth print-access-token" ] && echo ya29.fake-token\n');
    await chmod(join(bin, 'gcloud'), 0o755);
    const home = await makeTempDir('home', t);
    const infos: string[] = [];
    const env = { PATH: `${bin}:/usr/bin:/bin` };
    for (const host of ['gcr.io', 'eu.gcr.io', 'us-docker.pkg.dev']) {
      assert.deepEqual(await lookupCredentials(host, { env, homedir: home, onInfo: (m) => infos.push(m) }), { username: 'oauth2accesstoken', password: 'ya29.fake-token' });
    }
    assert.match(infos[0] ?? '', /gcloud auth print-access-token/);
    assert.equal(await lookupCredentials('ghcr.io', { env, homedir: home }), undefined);
    assert.equal(await lookupCredentials('gcr.io', { env: { PATH: '/nonexistent' }, homedir: home }), undefined, 'no gcloud: anonymous');

    const key = JSON.stringify({ type: 'service_account', client_email: 'x@y.iam.gserviceaccount.com', private_key: 'k' });
    await writeFile(join(home, 'key.json'), key);
    assert.deepEqual(await lookupCredentials('gcr.io', { env: { ...env, GOOGLE_APPLICATION_CREDENTIALS: join(home, 'key.json') }, homedir: home }), { username: '_json_key', password: key });
  });

  it('normalises config keys to hosts', () => {
    assert.equal(configKeyHost('https://index.docker.io/v1/'), 'index.docker.io');
    assert.equal(configKeyHost('http://Reg:5000/v2/'), 'reg:5000');
    assert.equal(configKeyHost('gcr.io'), 'gcr.io');
  });
});

describe('parseWwwAuthenticate', () => {
  it('reads Bearer and Basic challenges with quoted params', () => {
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), [
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Basic realm="test-realm"'), [{ scheme: 'basic', params: { realm: 'test-realm' } }]);
  });

  it('reads several challenges, escapes, spaces and unquoted values', () => {
    assert.deepEqual(parseWwwAuthenticate('Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'), [
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="r" , error="insufficient_scope",scope="a b"'), [
      { scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope', scope: 'a b' } },
    ]);
  });

  it('survives malformed input', () => {
    assert.deepEqual(parseWwwAuthenticate(''), []);
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="unterminated'), [{ scheme: 'bearer', params: {} }]);
    assert.deepEqual(parseWwwAuthenticate('@@@'), []);
    assert.equal(parseWwwAuthenticate('Bearer ,,, realm=x')[0]?.scheme, 'bearer');
  });
});

describe('token helpers', () => {
  it('checks realms like ggcr', () => {
    assert.equal(realmProblem('https://auth.docker.io/token', 'index.docker.io', true), undefined);
    assert.match(realmProblem('http://auth.example/token', 'reg.example', true) ?? '', /plain http/);
    assert.match(realmProblem('https://10.0.0.5/token', 'reg.example', true) ?? '', /private address/);
    assert.match(realmProblem('https://127.0.0.1:9/token', 'reg.example', true) ?? '', /private address/);
    assert.equal(realmProblem('http://127.0.0.1:9/token', '127.0.0.1:5000', false), undefined);
    assert.match(realmProblem('file:///etc/passwd', 'reg.example', true) ?? '', /not http/);
  });

  it('reads token or access_token, with a default lifetime', () => {
    assert.deepEqual(parseTokenResponse({ token: 't', expires_in: 300 }), { token: 't', expiresIn: 300 });
    assert.deepEqual(parseTokenResponse({ access_token: 'a' }), { token: 'a', expiresIn: 60 });
    assert.equal(parseTokenResponse({}), undefined);
    assert.equal(parseTokenResponse('x'), undefined);
  });

  it('caches per scope set until shortly before expiry', () => {
    const cache = new TokenCache();
    cache.set('r', ['b', 'a'], 'tok', 60, 1000);
    assert.equal(cache.get('r', ['a', 'b'], 1000), 'tok');
    assert.equal(cache.get('r', ['a'], 1000), 'tok', 'a subset is served');
    assert.equal(cache.get('r', ['c'], 1000), undefined);
    assert.equal(cache.get('other', ['a', 'b'], 1000), undefined);
    assert.equal(cache.get('r', ['a', 'b'], 1000 + 60_000), undefined);
  });

  it('forgets a refused token wherever it is cached', () => {
    const cache = new TokenCache();
    cache.set('r', ['s1'], 'bad', 60, 0);
    cache.set('r', ['s2'], 'bad', 60, 0);
    cache.set('r', ['s3'], 'good', 60, 0);
    cache.deleteToken('r', 'bad');
    assert.equal(cache.get('r', ['s1'], 1), undefined);
    assert.equal(cache.get('r', ['s2'], 1), undefined);
    assert.equal(cache.get('r', ['s3'], 1), 'good');
  });

  it('lets a wider token serve a narrower request', () => {
    const cache = new TokenCache();
    cache.set('r', ['repository:x/y:pull,push', 'repository:z:pull'], 'wide', 60, 0);
    assert.equal(cache.get('r', ['repository:x/y:pull'], 1), 'wide');
    assert.equal(cache.get('r', ['repository:z:pull', 'repository:x/y:push'], 1), 'wide');
    assert.equal(cache.get('r', ['repository:z:push'], 1), undefined);
    assert.equal(cache.get('r', ['repository:x/yy:pull'], 1), undefined);
    assert.equal(cache.get('r2', ['repository:x/y:pull'], 1), undefined);
  });

  it('puts the needed scopes first', () => {
    assert.deepEqual(mergeScopes(['repository:a:pull,push'], 'repository:b:pull repository:a:pull,push'), ['repository:a:pull,push', 'repository:b:pull']);
    assert.deepEqual(mergeScopes(['repository:a:pull,push'], 'repository:a:push,pull'), ['repository:a:pull,push']);
    assert.deepEqual(mergeScopes(['repository:a:pull'], 'repository:a:push'), ['repository:a:pull', 'repository:a:push']);
  });
});

describe('withRetry', () => {
  const policy = { tries: 4, maxElapsedMs: 10_000, baseDelayMs: 1, factor: 2 };

  it('retries what classify allows, then rethrows the last error', async () => {
    const notices: number[] = [];
    let calls = 0;
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw new Error(`boom ${calls}`);
      }, { policy, classify: () => ({ cause: 'x' }), onRetry: (n) => notices.push(n.attempt) }),
      /boom 4/,
    );
    assert.equal(calls, 4);
    assert.deepEqual(notices, [1, 2, 3]);
  });

  it('does not retry a final error, and stops when time runs out', async () => {
    let calls = 0;
    await assert.rejects(withRetry(async () => { calls++; throw new Error('final'); }, { policy, classify: () => undefined }), /final/);
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(
      withRetry(async () => { calls++; throw new Error('slow'); }, { policy: { ...policy, maxElapsedMs: 100 }, classify: () => ({ cause: 'x', retryAfterMs: 5000 }) }),
      /slow/,
    );
    assert.equal(calls, 1);
  });

  it('backs off exponentially with bounded jitter, and reads Retry-After', () => {
    const p = { tries: 4, maxElapsedMs: 1e9, baseDelayMs: 1000, factor: 3 };
    assert.equal(backoffDelay(p, 1, () => 0.5), 1000);
    assert.equal(backoffDelay(p, 3, () => 0.5), 9000);
    assert.equal(backoffDelay(p, 1, () => 0), 800);
    assert.equal(backoffDelay(p, 1, () => 0.999999), 1200);
    assert.equal(parseRetryAfter('2'), 2000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 5000), 5000);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});
