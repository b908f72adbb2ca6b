// `tsko resolve`, `apply`, `create`, `delete` and `run` end to end: the real CLI on a temp Go
// module, Debian's docker-registry for the pushes, skopeo to check what was pushed, and the real
// kubectl (against a discovery-only API fake, as no cluster runs here) to accept the output.
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { skopeoInspect } from '../support/image-check.js';
import { startKubeDiscovery, type KubeDiscovery } from '../support/kube-discovery.js';
import { makeTempDir } from '../support/tmp.js';
import { runTsko, type TskoRunResult } from '../support/tsko-cli.js';

const REF = /^127\.0\.0\.1:\d+\/test\/[a-z0-9._-]+@sha256:[a-f0-9]{64}$/;

let registry: DockerRegistry;
let kube: KubeDiscovery;
let cacheHome: string;
let app: string;

const GO_BIN = join(goRoot(), 'bin');

function goRoot(): string {
  return process.env.GOROOT_FOR_TESTS ?? '/usr/local/go';
}

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    XDG_CACHE_HOME: cacheHome,
    GOCACHE: goCacheDir(),
    KO_DOCKER_REPO: `${registry.host}/test`,
    KO_DEFAULTBASEIMAGE: 'builtin://static',
    SOURCE_DATE_EPOCH: undefined,
    KUBECONFIG: kube.kubeconfig,
    ...extra,
  };
}

function tsko(args: string[], extra: Record<string, string | undefined> = {}, input?: string): Promise<TskoRunResult> {
  return runTsko(args, { env: env(extra), cwd: app, ...(input !== undefined ? { input } : {}) });
}

function documentsOf(yaml: string): Array<Record<string, unknown>> {
  const docs = parseAllDocuments(yaml);
  assert.ok(Array.isArray(docs), 'output parses as YAML');
  for (const doc of docs) assert.deepEqual(doc.errors, [], `output parses as YAML:\n${yaml}`);
  return docs.map((doc) => doc.toJS() as Record<string, unknown>);
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`))?.length ?? 0;
}

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  }
}

const MAIN = (name: string) => `package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("${name}") }\n`;

describe('tsko resolve / apply / create / delete / run', () => {
  before(async () => {
    registry = await startDockerRegistry();
    cacheHome = await makeTempDir('resolve-cache');
    kube = await startKubeDiscovery(await makeTempDir('resolve-kube'));
    app = await makeTempDir('resolve-app');
    await writeFiles(app, {
      'go.mod': 'module example.com/app\n\ngo 1.22\n',
      'cmd/app/main.go': MAIN('app'),
      'cmd/worker/main.go': MAIN('worker'),
      'cmd/broken/main.go': 'package main\n\nfunc main() { var n int = "not a number"; _ = n }\n',
      'lib/lib.go': 'package lib\n\n// Answer is not a command.\nconst Answer = 42\n',
      'deploy/10-app.yaml': [
        '# The app, as the team wrote it.',
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        '  name: app   # keep this comment',
        '  labels: {app: app, tier: web}',
        'spec:',
        '  selector:',
        '    matchLabels: {app: app}',
        '  template:',
        '    metadata:',
        '      labels: {app: app}',
        '    spec:',
        '      containers:',
        '      - name: app',
        '        image: ko://example.com/app/cmd/app  # built once',
        '',
      ].join('\n'),
      'deploy/20-more.yml': [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  name: app-once',
        '  labels:',
        '    app: app',
        'spec:',
        '  containers:',
        '  - name: app',
        '    image: "ko://example.com/app/cmd/app"',
        '    args: ["--peer", ko://example.com/app/cmd/worker]',
        '---',
        '# a ConfigMap with no reference passes through untouched',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: settings',
        '  labels: {app: settings}',
        'data:',
        '  greeting: "hello"   # quoted on purpose',
        '  path: ko-not-a-reference',
        '---',
        'apiVersion: v1',
        'kind: Service',
        'metadata:',
        '  name: app',
        '  labels: {app: app, tier: web}',
        'spec:',
        '  selector: {app: app}',
        '  ports: [{port: 80}]',
        '',
      ].join('\n'),
      'deploy/30-list.json': JSON.stringify(
        {
          apiVersion: 'v1',
          kind: 'List',
          items: [
            { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'worker', labels: { app: 'worker' } }, spec: { containers: [{ name: 'w', image: 'ko://./cmd/worker' }] } },
            { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'app-two', labels: { app: 'app' } }, spec: { containers: [{ name: 'a', image: 'ko://example.com/app/cmd/app' }] } },
          ],
        },
        null,
        2,
      ),
      'deploy/notes.md': 'ko://example.com/app/cmd/nope is not YAML and is not read\n',
      'deploy/nested/40-extra.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\n  labels: {app: nested}\ndata:\n  image: ko://example.com/app/cmd/worker\n',
      'bad/malformed.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [broken\ndata: {}\n',
      'bad/missing.yaml': 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: ko://example.com/app/cmd/app\n  - name: d\n    image: ko://example.com/app/cmd/nope\n',
      'bad/library.yaml': 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: ko://example.com/app/lib\n',
      'bad/broken.yaml': 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: ko://example.com/app/cmd/worker\n  - name: d\n    image: ko://example.com/app/cmd/broken\n',
    });
  });
  after(async () => {
    await kube?.stop();
    await registry?.stop();
  });

  it('resolves a three-file directory: each import path built once, every document with digests, comments and formatting kept', async () => {
    const result = await tsko(['resolve', '-f', 'deploy', '--sbom=none']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(count(result.stderr, /Building example\.com\/app\/cmd\/app for /), 1, result.stderr);
    assert.equal(count(result.stderr, /Building example\.com\/app\/cmd\/worker for /), 1, 'ko://./cmd/worker and ko://example.com/app/cmd/worker are one build');
    assert.doesNotMatch(result.stdout, /ko:\/\//);

    const docs = documentsOf(result.stdout);
    assert.deepEqual(
      docs.map((d) => `${d.kind}/${(d.metadata as { name?: string } | undefined)?.name ?? ''}`),
      ['Deployment/app', 'Pod/app-once', 'ConfigMap/settings', 'Service/app', 'List/'],
      'every document, in file order; not the nested dir without -R, not notes.md',
    );
    const deployment = docs[0] as { spec: { template: { spec: { containers: Array<{ image: string }> } } } };
    const appRef = deployment.spec.template.spec.containers[0]?.image as string;
    assert.match(appRef, REF);
    const pod = docs[1] as { spec: { containers: Array<{ image: string; args: string[] }> } };
    assert.equal(pod.spec.containers[0]?.image, appRef, 'the same import path gives the same reference');
    const workerRef = pod.spec.containers[0]?.args[1] as string;
    assert.match(workerRef, REF);
    assert.notEqual(workerRef, appRef);
    const list = docs[4] as { items: Array<{ spec: { containers: Array<{ image: string }> } }> };
    assert.deepEqual(
      list.items.map((item) => item.spec.containers[0]?.image),
      [workerRef, appRef],
    );

    // The source text survives: comments, flow style, quoting, indentation.
    for (const line of [
      '# The app, as the team wrote it.',
      '  name: app   # keep this comment',
      '  labels: {app: app, tier: web}',
      '      - name: app',
      `        image: ${appRef}  # built once`,
      `    image: "${appRef}"`,
      `    args: ["--peer", ${workerRef}]`,
      '# a ConfigMap with no reference passes through untouched',
      '  greeting: "hello"   # quoted on purpose',
      '  path: ko-not-a-reference',
    ]) {
      assert.ok(result.stdout.includes(`${line}\n`), `output keeps ${JSON.stringify(line)}:\n${result.stdout}`);
    }
    assert.equal(count(result.stdout, /^---$/m), 4, 'documents separated by ---');

    // What the YAML names is in the registry, as its platform.
    const config = (await skopeoInspect(appRef, { insecure: true, raw: true, config: true })) as { architecture: string; config: { Entrypoint: string[] } };
    assert.equal(config.architecture, 'amd64');
    assert.deepEqual(config.config.Entrypoint, ['/ko-app/app']);
  });

  it('reads nested directories with -R, and stdin with -f -', async () => {
    const recursive = await tsko(['resolve', '-f', 'deploy', '-R', '--sbom=none']);
    assert.equal(recursive.code, 0, recursive.stderr);
    const names = documentsOf(recursive.stdout).map((d) => (d.metadata as { name?: string } | undefined)?.name);
    assert.ok(names.includes('nested'), `-R reads deploy/nested: ${names.join(', ')}`);

    const text = await readFile(join(app, 'deploy/10-app.yaml'), 'utf8');
    const piped = await tsko(['resolve', '-f', '-', '--sbom=none'], {}, text);
    assert.equal(piped.code, 0, piped.stderr);
    const [deployment] = documentsOf(piped.stdout) as Array<{ spec: { template: { spec: { containers: Array<{ image: string }> } } } }>;
    assert.match(deployment?.spec.template.spec.containers[0]?.image ?? '', REF);
  });

  it("writes --image-refs with each import path's reference once", async () => {
    const refs = join(await makeTempDir('resolve-refs'), 'refs.txt');
    const result = await tsko(['resolve', '-f', 'deploy', '--sbom=none', '--image-refs', refs]);
    assert.equal(result.code, 0, result.stderr);
    const lines = (await readFile(refs, 'utf8')).split('\n').filter(Boolean);
    assert.equal(lines.length, 2, lines.join('\n'));
    for (const line of lines) {
      assert.match(line, REF);
      assert.ok(result.stdout.includes(line));
    }
  });

  it('selects documents and List items with -l (=, !=, exists, !exists)', async () => {
    const byApp = await tsko(['resolve', '-f', 'deploy', '-l', 'app=app', '--sbom=none']);
    assert.equal(byApp.code, 0, byApp.stderr);
    const docs = documentsOf(byApp.stdout);
    assert.deepEqual(
      docs.map((d) => d.kind),
      ['Deployment', 'Pod', 'Service', 'List'],
    );
    const list = docs[3] as { items: Array<{ metadata: { name: string } }> };
    assert.deepEqual(
      list.items.map((item) => item.metadata.name),
      ['app-two'],
      'a List keeps only the items that match',
    );

    const byWorker = await tsko(['resolve', '-f', 'deploy', '-l', 'app=worker', '--sbom=none']);
    assert.equal(byWorker.code, 0, byWorker.stderr);
    assert.deepEqual(
      documentsOf(byWorker.stdout).map((d) => (d.items as Array<{ metadata: { name: string } }>).map((item) => item.metadata.name)),
      [['worker']],
    );
    assert.doesNotMatch(byWorker.stderr, /Building example\.com\/app\/cmd\/app /, 'a reference only in unselected documents is not built');

    const tier = await tsko(['resolve', '-f', 'deploy', '-l', 'tier,app!=settings', '--sbom=none']);
    assert.equal(tier.code, 0, tier.stderr);
    assert.deepEqual(
      documentsOf(tier.stdout).map((d) => d.kind),
      ['Deployment', 'Service'],
    );
    const notTier = await tsko(['resolve', '-f', 'deploy/20-more.yml', '-l', '!tier', '--sbom=none']);
    assert.equal(notTier.code, 0, notTier.stderr);
    assert.deepEqual(
      documentsOf(notTier.stdout).map((d) => d.kind),
      ['Pod', 'ConfigMap'],
    );
  });

  it("resolve's output is accepted by kubectl apply --dry-run=client", async () => {
    const result = await tsko(['resolve', '-f', 'deploy', '--sbom=none']);
    assert.equal(result.code, 0, result.stderr);
    // No OpenAPI here (see kube-discovery.ts): kubectl still parses, maps and plans every object.
    const applied = await execa('kubectl', ['apply', '--dry-run=client', '--validate=false', '-f', '-'], {
      input: result.stdout,
      env: { KUBECONFIG: kube.kubeconfig },
      reject: false,
      timeout: 60_000,
    });
    assert.equal(applied.exitCode, 0, applied.stderr);
    assert.deepEqual(applied.stdout.split('\n').sort(), [
      'configmap/settings created (dry run)',
      'deployment.apps/app created (dry run)',
      'pod/app-once created (dry run)',
      'pod/app-two created (dry run)',
      'pod/worker created (dry run)',
      'service/app created (dry run)',
    ]);
  });

  it('tsko apply and create pipe the resolved YAML into kubectl, forwarding -n and the args after --', async () => {
    const applied = await tsko(['apply', '-f', 'deploy', '--sbom=none', '-n', 'team-a', '--', '--dry-run=client', '--validate=false']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^deployment\.apps\/app created \(dry run\)$/m);
    assert.match(applied.stdout, /^pod\/worker created \(dry run\)$/m);
    assert.ok(kube.requests.includes('GET /apis/apps/v1/namespaces/team-a/deployments/app'), `-n reached kubectl:\n${kube.requests.join('\n')}`);

    const created = await tsko(['create', '-f', 'deploy/10-app.yaml', '--sbom=none', '--', '--dry-run=client', '--validate=false']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout.trim(), 'deployment.apps/app created (dry run)');
  });

  it('tsko run publishes, then runs kubectl run with ko\'s defaults; tsko delete passes through', async () => {
    const bin = await makeTempDir('resolve-fake-kubectl');
    const argvFile = join(bin, 'argv');
    // A stand-in kubectl: `kubectl run` needs a cluster with a kubelet, which cannot run here.
    await writeFile(join(bin, 'kubectl'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > '${argvFile}'\necho "fake kubectl ran"\nexit 3\n`);
    await chmod(join(bin, 'kubectl'), 0o755);
    const PATH = `${bin}:${process.env.PATH ?? ''}`;

    const run = await tsko(['run', './cmd/app', '--sbom=none', '-n', 'jobs', '--', '--greeting', 'hi'], { PATH });
    assert.equal(run.code, 3, "kubectl's exit code is tsko's");
    assert.match(run.stdout, /fake kubectl ran/);
    const argv = (await readFile(argvFile, 'utf8')).split('\n').slice(0, -1);
    const ref = argv[argv.indexOf('--image') + 1] as string;
    assert.match(ref, REF);
    assert.deepEqual(argv, ['run', ref.split('/').pop()?.split('@')[0], '--namespace=jobs', '--image', ref, '--attach', '--rm', '--restart=Never', '--log-flush-frequency=1s', '--', '--greeting', 'hi']);
    assert.match(argv[1] as string, /^app-[a-f0-9]{32}$/, 'the pod is named after the image repository');

    const deleted = await tsko(['delete', '-f', 'deploy', '-n', 'team-a', '--ignore-not-found'], { PATH });
    assert.equal(deleted.code, 3);
    assert.deepEqual((await readFile(argvFile, 'utf8')).split('\n').slice(0, -1), ['delete', '-f', 'deploy', '-n', 'team-a', '--ignore-not-found']);
  });

  describe('bad input: one clear line, a non-zero exit (except an empty selection), and no YAML on stdout', () => {
    it('malformed YAML names the file and line', async () => {
      const result = await tsko(['resolve', '-f', 'bad/malformed.yaml']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: bad\/malformed\.yaml:\d+:\d+: invalid YAML: /m);
      assert.match(result.stderr, /malformed\.yaml:(4|5):/, 'the line of the unclosed [');
    });

    it('a ko:// reference to a missing package names it and its file:line, and nothing is built', async () => {
      const result = await tsko(['resolve', '-f', 'bad/missing.yaml']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: bad\/missing\.yaml:10: ko:\/\/example\.com\/app\/cmd\/nope: cannot load package/m);
      assert.doesNotMatch(result.stderr, /Building/, 'every reference is checked before any build');
    });

    it('a ko:// reference to a package that is not main names it and its file:line', async () => {
      const result = await tsko(['resolve', '-f', 'bad/library.yaml']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: bad\/library\.yaml:8: ko:\/\/example\.com\/app\/lib: .*not a main package/m);
    });

    it('a failed build of one reference writes no YAML, though the other was pushed', async () => {
      const result = await tsko(['resolve', '-f', 'bad/broken.yaml', '--sbom=none']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: bad\/broken\.yaml:10: ko:\/\/example\.com\/app\/cmd\/broken: go build failed/m);
    });

    it('a selector that matches nothing says so and exits 0 with no documents', async () => {
      const result = await tsko(['resolve', '-f', 'deploy', '-l', 'app=nothing']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: no documents match the selector "app=nothing"$/m);
      assert.doesNotMatch(result.stderr, /Building/);
      const applied = await tsko(['apply', '-f', 'deploy', '-l', 'app=nothing']);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stderr, /no documents match the selector/);
    });

    it('an invalid selector is refused', async () => {
      const result = await tsko(['resolve', '-f', 'deploy', '-l', 'app in (a,b)']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^tsko: invalid selector "app in \(a,b\)": set-based requirements/m);
    });

    it('an unknown platform is refused before anything is built', async () => {
      const result = await tsko(['resolve', '-f', 'deploy', '--platform', 'linux/sparc']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: unknown platform "linux\/sparc"$/m);
      assert.doesNotMatch(result.stderr, /Building/);
    });

    it('kubectl missing: a clear message naming it, before any build', async () => {
      const result = await tsko(['apply', '-f', 'deploy'], { PATH: GO_BIN });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tsko: kubectl was not found on PATH/m);
      assert.doesNotMatch(result.stderr, /Building/);
    });

    it('a missing -f path and a missing -f are refused', async () => {
      const missing = await tsko(['resolve', '-f', 'nowhere.yaml']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^tsko: -f nowhere\.yaml: no such file or directory$/m);
      const none = await tsko(['resolve']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /^tsko: no input: pass -f FILE/m);
    });
  });
});
