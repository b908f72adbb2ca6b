// Registry auth through the real CLI, against docker-registry in its auth modes: `tsko login` and
// `tsko logout` write and clear config.json the way docker does (or go through a credential
// helper), `tsko build` pushes with Basic, Bearer and TLS, and every bad input of issue 7 gets its
// one `tsko:` line. Everything the CLI prints here (and the events of an in-process push) is kept,
// and the last test greps it for every password and token used: none may appear.
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import { createEventBus } from '../../src/events.js';
import { makePipeline } from '../../src/publish/pipeline.js';
import { type DockerRegistry, startDockerRegistry } from '../support/docker-registry.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { goCacheDir } from '../support/go-env.js';
import { checkImage } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko, type TskoRunOptions, type TskoRunResult } from '../support/tsko-cli.js';

const REF = /^127\.0\.0\.1:\d+\/[a-z0-9/._-]+(:[\w.-]+)?@sha256:[a-f0-9]{64}\n$/;

/** Every output of every run in this file, for the secret grep at the end. */
const captured: string[] = [];
/** Passwords and Basic encodings used in this file. */
const secrets = new Set<string>();
/** Token servers whose issued tokens must not appear either. */
const tokenSources: Array<() => string[]> = [];

function addSecret(username: string, password: string): void {
  secrets.add(password);
  secrets.add(Buffer.from(`${username}:${password}`).toString('base64'));
}

let cacheHome: string;
let run = 0;

async function tsko(args: string[], options: TskoRunOptions = {}): Promise<TskoRunResult> {
  const result = await runTsko(args, {
    ...options,
    env: { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), SOURCE_DATE_EPOCH: undefined, NODE_EXTRA_CA_CERTS: undefined, ...options.env },
  });
  // The command line itself is the test's, not tsko's output (and -p puts a password there).
  captured.push(result.stdout, result.stderr);
  return result;
}

/** `tsko build ./examples/hello` with a label that makes every push a new image. */
function build(repo: string, env: Record<string, string | undefined>, extra: string[] = []): Promise<TskoRunResult> {
  run += 1;
  return tsko(['build', './examples/hello', '--bare', '--image-label', `run=${run}`, ...extra], { env: { KO_DOCKER_REPO: repo, ...env } });
}

/** The failure contract: non-zero exit, nothing on stdout, one `tsko:` line matching, no stack. */
function assertFailsWith(result: TskoRunResult, pattern: RegExp): string {
  assert.notEqual(result.code, 0, `expected a failure, stderr:\n${result.stderr}`);
  assert.equal(result.stdout, '', 'nothing on stdout');
  const lines = result.stderr.split('\n').filter((l) => l.startsWith('tsko: '));
  assert.equal(lines.length, 1, `exactly one "tsko: " line in:\n${result.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace without --verbose');
  return lines[0]!;
}

async function dockerConfigDir(config?: object): Promise<string> {
  const dir = await makeTempDir('docker-config');
  if (config !== undefined) await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
}

async function tagsOf(registry: DockerRegistry, repository: string): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/${repository}/tags/list`);
  if (res.status === 404) return [];
  return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A docker credential helper for tests (`docker-credential-<name>` on PATH): keeps what `store`
 * gets in files under $TSKO_TEST_HELPER_STORE, keyed by server URL, as the real helpers do.
 */
async function installHelpers(): Promise<{ bin: string; store: string }> {
  const bin = await makeTempDir('helper-bin');
  const store = await makeTempDir('helper-store');
  const script = `#!${process.execPath}
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.TSKO_TEST_HELPER_STORE;
const input = fs.readFileSync(0, 'utf8');
const fileOf = (url) => path.join(dir, Buffer.from(url.trim()).toString('hex') + '.json');
const verb = process.argv[2];
if (verb === 'store') {
  const o = JSON.parse(input);
  fs.writeFileSync(fileOf(o.ServerURL), JSON.stringify(o));
} else if (verb === 'get' || verb === 'erase') {
  const file = fileOf(input);
  if (!fs.existsSync(file)) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
  if (verb === 'get') process.stdout.write(fs.readFileSync(file));
  else fs.rmSync(file);
} else { process.exit(2); }
`;
  await writeFile(join(bin, 'docker-credential-tskotest'), script);
  await writeFile(join(bin, 'docker-credential-garbage'), '#!/bin/sh\necho "this is not json"\n');
  await chmod(join(bin, 'docker-credential-tskotest'), 0o755);
  await chmod(join(bin, 'docker-credential-garbage'), 0o755);
  return { bin, store };
}

before(async () => {
  cacheHome = await makeTempDir('auth-cli-cache');
});

describe('tsko login / logout with htpasswd Basic auth', () => {
  let registry: DockerRegistry;
  before(async () => {
    registry = await startDockerRegistry({ auth: 'htpasswd' });
    addSecret(registry.username!, registry.password!);
  });
  after(async () => {
    await registry?.stop();
  });

  it('refuses a wrong password in one line and saves nothing', async () => {
    const wrong = 'wrong-password-4711';
    addSecret(registry.username!, wrong);
    const dir = await dockerConfigDir();
    const result = await tsko(['login', registry.host, '-u', registry.username!, '--password-stdin'], { env: { DOCKER_CONFIG: dir }, input: `${wrong}\n` });
    assertFailsWith(result, new RegExp(`^tsko: authentication failed for ${escape(registry.host)} as ${registry.username}$`));
    await assert.rejects(stat(join(dir, 'config.json')), /ENOENT/);
  });

  it('checks its flags like docker login', async () => {
    const env = { DOCKER_CONFIG: await dockerConfigDir() };
    assertFailsWith(await tsko(['login', registry.host, '-u', 'x', '-p', 'y', '--password-stdin'], { env }), /--password and --password-stdin are mutually exclusive/);
    assertFailsWith(await tsko(['login', registry.host, '--password-stdin'], { env, input: 'y\n' }), /--password-stdin needs --username/);
    assertFailsWith(await tsko(['login', registry.host, '-u', 'x'], { env }), /no password for x/);
    assertFailsWith(await tsko(['login', registry.host], { env }), new RegExp(`no saved credentials for ${escape(registry.host)}`));
  });

  it('saves auths[host].auth in config.json (0600, other keys kept), which skopeo and tsko build then use', async (t) => {
    const dir = await dockerConfigDir({ auths: { 'other.example:5000': { auth: Buffer.from('a:b').toString('base64') } }, psFormat: 'table {{.ID}}' });
    const result = await tsko(['login', `https://${registry.host}/`, '-u', registry.username!, '--password-stdin'], { env: { DOCKER_CONFIG: dir }, input: `${registry.password!}\n` });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'Login Succeeded\n');
    assert.match(result.stderr, /stored unencrypted in .*config\.json/);
    const file = join(dir, 'config.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readJson(file), {
      auths: {
        'other.example:5000': { auth: Buffer.from('a:b').toString('base64') },
        [registry.host]: { auth: Buffer.from(`${registry.username!}:${registry.password!}`).toString('base64') },
      },
      psFormat: 'table {{.ID}}',
    });

    const pushed = await build(`${registry.host}/login/basic`, { DOCKER_CONFIG: dir }, ['-v']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, REF);
    assert.match(pushed.stderr, /^PUT http:\/\/127\.0\.0\.1:\d+\/v2\/login\/basic\/manifests\/latest → 201/m, '--verbose prints request lines');
    await checkImage(pushed.stdout.trim(), { insecure: true, authfile: file, expectBody: 'hello v1\n', t });

    // With nothing given, login checks what is saved, as docker does.
    const again = await tsko(['login', registry.host], { env: { DOCKER_CONFIG: dir } });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'Login Succeeded\n');

    const out = await tsko(['logout', registry.host], { env: { DOCKER_CONFIG: dir } });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `Removing login credentials for ${registry.host}\n`);
    assert.deepEqual(Object.keys((await readJson(file)).auths as object), ['other.example:5000']);
    const twice = await tsko(['logout', registry.host], { env: { DOCKER_CONFIG: dir } });
    assert.equal(twice.code, 0);
    assert.match(twice.stderr, new RegExp(`Not logged in to ${escape(registry.host)}`));

    const denied = await build(`${registry.host}/login/basic`, { DOCKER_CONFIG: dir });
    const line = assertFailsWith(denied, new RegExp(`${escape(registry.host)} requires authentication`));
    assert.ok(line);
    assert.match(denied.stderr, /hint: run `tsko login/);
  });

  it('accepts -p with docker\'s warning', async () => {
    const dir = await dockerConfigDir();
    const result = await tsko(['login', registry.host, '-u', registry.username!, '-p', registry.password!], { env: { DOCKER_CONFIG: dir } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /WARNING! Using --password via the CLI is insecure\. Use --password-stdin\./);
    assert.ok((await readJson(join(dir, 'config.json'))).auths);
  });

  it('says "authentication failed for REGISTRY as USER" when tsko build meets a wrong password', async () => {
    const wrong = 'another-wrong-one-0815';
    addSecret(registry.username!, wrong);
    const dir = await dockerConfigDir({ auths: { [registry.host]: { auth: Buffer.from(`${registry.username!}:${wrong}`).toString('base64') } } });
    const result = await build(`${registry.host}/login/wrong`, { DOCKER_CONFIG: dir }, ['-v']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`^tsko: authentication failed for ${escape(registry.host)} as ${registry.username}$`, 'm'));
    assert.deepEqual(await tagsOf(registry, 'login/wrong'), []);
  });

  describe('through a credential helper', () => {
    let helpers: { bin: string; store: string };
    before(async () => {
      helpers = await installHelpers();
    });
    const helperEnv = (dir: string): Record<string, string> => ({
      DOCKER_CONFIG: dir,
      PATH: `${helpers.bin}:${process.env.PATH ?? ''}`,
      TSKO_TEST_HELPER_STORE: helpers.store,
    });

    it('stores with a configured credsStore, keeps an empty auths entry, builds with `get`, erases on logout', async () => {
      const dir = await dockerConfigDir({ credsStore: 'tskotest' });
      const login = await tsko(['login', registry.host, '-u', registry.username!, '--password-stdin'], { env: helperEnv(dir), input: registry.password! });
      assert.equal(login.code, 0, login.stderr);
      assert.equal(login.stdout, 'Login Succeeded\n');
      assert.doesNotMatch(login.stderr, /unencrypted/);
      const config = await readJson(join(dir, 'config.json'));
      assert.deepEqual(config, { credsStore: 'tskotest', auths: { [registry.host]: {} } });
      const storedFile = join(helpers.store, `${Buffer.from(registry.host).toString('hex')}.json`);
      assert.deepEqual(await readJson(storedFile), { ServerURL: registry.host, Username: registry.username, Secret: registry.password });

      const pushed = await build(`${registry.host}/helper/app`, helperEnv(dir));
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.match(pushed.stdout, REF);

      const out = await tsko(['logout', registry.host], { env: helperEnv(dir) });
      assert.equal(out.code, 0, out.stderr);
      await assert.rejects(stat(storedFile), /ENOENT/);
      assert.deepEqual((await readJson(join(dir, 'config.json'))).auths, {});
    });

    it('a credHelper for the registry wins over credsStore', async () => {
      const dir = await dockerConfigDir({ credsStore: 'missing-store', credHelpers: { [registry.host]: 'tskotest' } });
      const login = await tsko(['login', registry.host, '-u', registry.username!, '--password-stdin'], { env: helperEnv(dir), input: registry.password! });
      assert.equal(login.code, 0, login.stderr);
      assert.deepEqual((await readJson(join(dir, 'config.json'))).auths, { [registry.host]: {} });
    });

    it('a helper that is missing or prints garbage is one clear line', async () => {
      const missing = await dockerConfigDir({ credHelpers: { [registry.host]: 'nonexistent-tsko' } });
      assertFailsWith(await build(`${registry.host}/helper/missing`, helperEnv(missing)), /credential helper docker-credential-nonexistent-tsko is not installed/);
      assertFailsWith(
        await tsko(['login', registry.host, '-u', registry.username!, '--password-stdin'], { env: helperEnv(missing), input: registry.password! }),
        /credential helper docker-credential-nonexistent-tsko is not installed/,
      );
      const garbage = await dockerConfigDir({ credsStore: 'garbage' });
      assertFailsWith(await build(`${registry.host}/helper/garbage`, helperEnv(garbage)), /credential helper docker-credential-garbage printed something that is not JSON/);
    });

    it('runs the real docker-credential-gcloud, and shows what it says when it has no account', async () => {
      const dir = await dockerConfigDir({ credHelpers: { [registry.host]: 'gcloud' } });
      // An empty gcloud config dir: no account, whatever the machine's gcloud is logged in as.
      const cloudsdk = await makeTempDir('cloudsdk');
      const result = await build(`${registry.host}/helper/gcloud`, { DOCKER_CONFIG: dir, CLOUDSDK_CONFIG: cloudsdk });
      assertFailsWith(result, /^tsko: credential helper docker-credential-gcloud failed \(exit 1\): You do not currently have an active account selected/);
    });
  });
});

describe('Bearer token auth through the CLI', () => {
  let registry: DockerRegistry;
  let dir: string;
  before(async () => {
    registry = await startDockerRegistry({ auth: 'token' });
    addSecret(registry.username!, registry.password!);
    const server = registry.tokenServer!;
    tokenSources.push(() => server.issued);
    dir = await dockerConfigDir();
  });
  after(async () => {
    await registry?.stop();
  });

  it('logs in through the token server and pushes an image skopeo and umoci accept', async (t) => {
    const wrong = await tsko(['login', registry.host, '-u', registry.username!, '--password-stdin'], { env: { DOCKER_CONFIG: dir }, input: 'not-the-password-9' });
    addSecret(registry.username!, 'not-the-password-9');
    assertFailsWith(wrong, new RegExp(`^tsko: authentication failed for ${escape(registry.host)} as ${registry.username}$`));

    const login = await tsko(['-v', 'login', registry.host, '-u', registry.username!, '--password-stdin'], { env: { DOCKER_CONFIG: dir }, input: registry.password! });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /GET http:\/\/127\.0\.0\.1:\d+\/token\?.* → 200/);
    const pushed = await build(`${registry.host}/token/app`, { DOCKER_CONFIG: dir }, ['-v']);
    assert.equal(pushed.code, 0, pushed.stderr);
    await checkImage(pushed.stdout.trim(), { insecure: true, authfile: join(dir, 'config.json'), expectBody: 'hello v1\n', t });
  });

  it('re-exchanges a token that expires mid-push; says so in one line when every token is refused', async () => {
    const server = registry.tokenServer!;
    server.expiredPushTokens = 1;
    const ok = await build(`${registry.host}/token/expiring`, { DOCKER_CONFIG: dir });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(server.expiredPushTokens, 0, 'the push token was issued expired');
    assert.match(ok.stdout, REF);

    server.expiredPushTokens = 1000;
    try {
      const failed = await build(`${registry.host}/token/expired`, { DOCKER_CONFIG: dir });
      assertFailsWith(failed, new RegExp(`^tsko: ${escape(registry.host)} refused the token its token server issued for ${registry.username} \\(invalid_token\\)`));
      assert.match(failed.stderr, /hint: .*clock/);
      assert.deepEqual(await tagsOf(registry, 'token/expired'), []);
    } finally {
      server.expiredPushTokens = 0;
    }
  });

  it('an in-process push emits no token or password in any event', async () => {
    const events = createEventBus();
    events.subscribe((e) => captured.push(JSON.stringify(e)));
    const config = await resolveConfig({
      cwd: repoRoot,
      env: { ...process.env, DOCKER_CONFIG: dir, XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir() },
      fresh: true,
      build: { bare: true, imageLabel: ['run=in-process'], platform: ['linux/amd64'], sbom: 'none' },
    });
    const pipeline = makePipeline(config, { events, dockerRepo: `${registry.host}/token/events` });
    try {
      const result = await pipeline.publish('./examples/hello', { events });
      assert.ok(result.stats.blobsPushed + result.stats.blobsSkipped > 0);
    } finally {
      await pipeline.close();
    }
  });

  it('a token server that is down is one line', async (t) => {
    const other = await startDockerRegistry({ auth: 'token' });
    t.after(() => other.stop());
    addSecret(other.username!, other.password!);
    const otherDir = await dockerConfigDir({ auths: { [other.host]: { auth: Buffer.from(`${other.username!}:${other.password!}`).toString('base64') } } });
    await other.tokenServer!.stop();
    assertFailsWith(await build(`${other.host}/token/down`, { DOCKER_CONFIG: otherDir }), new RegExp(`^tsko: cannot reach ${escape(other.host)} for token request to 127\\.0\\.0\\.1:\\d+ .*connection refused`));
  });
});

describe('TLS with a self-signed certificate through the CLI', () => {
  let registry: DockerRegistry;
  let dir: string;
  before(async () => {
    registry = await startDockerRegistry({ tls: true, auth: 'htpasswd' });
    addSecret(registry.username!, registry.password!);
    dir = await dockerConfigDir({ auths: { [registry.host]: { auth: Buffer.from(`${registry.username!}:${registry.password!}`).toString('base64') } } });
  });
  after(async () => {
    await registry?.stop();
  });

  it('refuses an untrusted certificate in one line that says how to trust it', async () => {
    const result = await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir });
    assertFailsWith(result, new RegExp(`^tsko: TLS verification failed for ${escape(registry.host)} .*\\((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\\)$`));
    assert.match(result.stderr, /hint: trust its CA with registry\.caFile in tsko\.config\.ts or NODE_EXTRA_CA_CERTS=.* --insecure-registry/);
  });

  it('pushes with registry.caFile in the config, logs in with it, and with NODE_EXTRA_CA_CERTS or --insecure-registry', async (t) => {
    const configDir = await makeTempDir('tls-config');
    const configFile = join(configDir, 'tsko.config.ts');
    await mkdir(join(configDir, 'certs'));
    await writeFile(join(configDir, 'certs', 'ca.pem'), await readFile(registry.caFile!));
    await writeFile(configFile, "export default { defaultBaseImage: 'builtin://static', registry: { caFile: 'certs/ca.pem' } };\n");

    const withCa = await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir }, ['--config', configFile]);
    assert.equal(withCa.code, 0, withCa.stderr);
    await checkImage(withCa.stdout.trim(), { insecure: true, authfile: join(dir, 'config.json'), expectBody: 'hello v1\n', t });

    const loginDir = await dockerConfigDir();
    const login = await tsko(['login', registry.host, '-u', registry.username!, '--password-stdin', '--config', configFile], { env: { DOCKER_CONFIG: loginDir }, input: registry.password! });
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout, 'Login Succeeded\n');

    const extra = await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir, NODE_EXTRA_CA_CERTS: registry.caFile! });
    assert.equal(extra.code, 0, extra.stderr);
    const insecure = await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir }, ['--insecure-registry']);
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.match(insecure.stdout, REF);

    // registry.insecure names the registries that skip verification.
    const listed = join(configDir, 'insecure.config.ts');
    await writeFile(listed, `export default { defaultBaseImage: 'builtin://static', registry: { insecure: [${JSON.stringify(registry.host)}] } };\n`);
    const byConfig = await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir }, ['--config', listed]);
    assert.equal(byConfig.code, 0, byConfig.stderr);
    const other = join(configDir, 'other.config.ts');
    await writeFile(other, "export default { defaultBaseImage: 'builtin://static', registry: { insecure: ['registry.example:5000'] } };\n");
    assertFailsWith(await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir }, ['--config', other]), /TLS verification failed/);
  });

  it('a registry.caFile that is missing or not PEM is a config error', async () => {
    const configDir = await makeTempDir('tls-bad-config');
    const configFile = join(configDir, 'tsko.config.ts');
    await writeFile(configFile, "export default { registry: { caFile: 'nope.pem' } };\n");
    assertFailsWith(await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir }, ['--config', configFile]), /registry\.caFile: cannot read .*nope\.pem: ENOENT/);
    await writeFile(join(configDir, 'nope.pem'), 'not a certificate\n');
    assertFailsWith(await build(`${registry.host}/tls/app`, { DOCKER_CONFIG: dir }, ['--config', configFile]), /registry\.caFile: .*nope\.pem holds no PEM certificate/);
  });
});

describe('a registry that lies or garbles its answers (through a fault proxy)', () => {
  let registry: DockerRegistry;
  let proxy: FaultProxy;
  const forged = `sha256:${'f'.repeat(64)}`;
  before(async () => {
    registry = await startDockerRegistry();
    proxy = await startFaultProxy({ upstream: registry.url });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  it('a wrong Docker-Content-Digest on a blob upload is refused and nothing is tagged', async () => {
    proxy.script.push({ match: /^PUT .*\/blobs\/uploads\//, fault: { kind: 'forge-digest', digest: forged }, times: 10 });
    assertFailsWith(await build(`${proxy.host}/forged/upload`, {}), new RegExp(`stored the blob as ${forged}, expected sha256:`));
    proxy.script.length = 0;
    assert.deepEqual(await tagsOf(registry, 'forged/upload'), []);
  });

  it('a 200 for a blob HEAD with a wrong Docker-Content-Digest is refused and nothing is tagged', async () => {
    const first = await build(`${proxy.host}/forged/head`, {}, ['-t', 'one']);
    assert.equal(first.code, 0, first.stderr);
    proxy.script.push({ match: /^HEAD .*\/blobs\//, fault: { kind: 'forge-digest', digest: forged }, times: 10 });
    assertFailsWith(await build(`${proxy.host}/forged/head`, {}, ['-t', 'two']), new RegExp(`answered HEAD blob .* with digest ${forged}`));
    proxy.script.length = 0;
    const tags = await tagsOf(registry, 'forged/head');
    assert.ok(tags.includes('one') && !tags.includes('two'), `tags: ${tags.join(', ')}`);
  });

  it('a wrong Docker-Content-Digest on the manifest is refused, and no further tag moves', async () => {
    proxy.script.push({ match: /^PUT .*\/manifests\//, fault: { kind: 'forge-digest', digest: forged } });
    assertFailsWith(await build(`${proxy.host}/forged/manifest`, {}, ['-t', 'a,b']), new RegExp(`stored manifest .* as ${forged}`));
    assert.ok(!(await tagsOf(registry, 'forged/manifest')).includes('b'));
  });

  it('a malformed WWW-Authenticate is one clear line', async () => {
    proxy.script.push({ match: /^HEAD .*\/manifests\//, fault: { kind: 'status', status: 401, headers: { 'www-authenticate': '@@@ not a challenge' } } });
    assertFailsWith(await build(`${proxy.host}/garbled/a`, {}), /refused HEAD manifest .* \(401\) without a usable WWW-Authenticate challenge/);
    proxy.script.push({ match: /^HEAD .*\/manifests\//, fault: { kind: 'status', status: 401, headers: { 'www-authenticate': 'Bearer realm="http://127.0.0.1:1/tok' } } });
    assertFailsWith(await build(`${proxy.host}/garbled/b`, {}), /sent a Bearer challenge without a realm/);
  });
});

describe('redaction', () => {
  it('no password, Basic credential or token appears in anything captured above', () => {
    const tokens = tokenSources.flatMap((source) => source());
    assert.ok(captured.length >= 60, `captured only ${captured.length} outputs`);
    assert.ok(secrets.size >= 8, `only ${secrets.size} secrets known`);
    assert.ok(tokens.length >= 3, `only ${tokens.length} tokens issued`);
    const all = captured.join('\n');
    // What was captured includes --verbose request lines, token requests and a --verbose stack trace.
    assert.match(all, /^GET http:\/\/127\.0\.0\.1:\d+\/token\?/m);
    assert.match(all, /^PUT http.* → 201/m);
    assert.match(all, /^\s+at /m);
    for (const secret of [...secrets, ...tokens]) {
      assert.ok(!all.includes(secret), `a secret leaked: ${secret.slice(0, 6)}…`);
    }
    assert.doesNotMatch(all, /authorization:\s*(basic|bearer)\s+(?!\[REDACTED\])/i);
    assert.doesNotMatch(all, /Bearer ey/);
  });
});
