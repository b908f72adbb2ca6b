// The CI recipes in examples/ hold: each parses, each tsko/gcloud/kubectl command they run exists
// with every flag they pass (asked of the installed tool's own --help), the build → deploy hand-off
// goes through one file, and the tsko commands themselves run here for real (docker-registry for
// the push, kubectl --dry-run=client on a discovery-only API fake for the apply).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { parse } from 'yaml';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { skopeoInspect } from '../support/image-check.js';
import { startKubeDiscovery, type KubeDiscovery } from '../support/kube-discovery.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot, runTsko } from '../support/tsko-cli.js';

type Tool = 'tsko' | 'gcloud' | 'kubectl';

interface Invocation {
  tool: Tool;
  /** Everything after the tool's name, shell words. */
  words: string[];
  line: string;
}

/** Splits a shell line into words, honouring quotes; `$(…)` stays one word. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote: string | undefined;
  let depth = 0;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '(' && word.endsWith('$')) {
      depth += 1;
      word += ch;
    } else if (ch === ')' && depth > 0) {
      depth -= 1;
      word += ch;
    } else if (/\s/.test(ch) && depth === 0) {
      if (word) words.push(word);
      word = '';
    } else {
      word += ch;
    }
  }
  if (word) words.push(word);
  return words;
}

/** The tsko, gcloud and kubectl commands a shell script runs (pipelines and && lists split). */
function invocations(script: string): Invocation[] {
  const found: Invocation[] = [];
  for (const line of script.replace(/\\\n/g, ' ').split('\n')) {
    for (const segment of line.split(/\|\||&&|\||;/)) {
      const words = shellWords(segment.trim());
      // Redirections are the shell's, not the command's.
      for (let i = words.length - 1; i >= 0; i--) if (words[i] === '<' || words[i] === '>' || words[i] === '>>') words.splice(i, 2);
      if (words[0] === 'npx') words.shift();
      const tool = words[0];
      if (tool === 'tsko' || tool === 'gcloud' || tool === 'kubectl') found.push({ tool, words: words.slice(1), line: segment.trim() });
    }
  }
  return found;
}

function flagsOf(words: string[]): string[] {
  const flags: string[] = [];
  for (const word of words) {
    if (word === '--') break;
    if (/^-{1,2}[A-Za-z]/.test(word)) flags.push(word.split('=')[0] as string);
  }
  return flags;
}

async function help(tool: Tool, path: string[]): Promise<string | undefined> {
  const result =
    tool === 'tsko'
      ? await runTsko([...path, '--help'], { env: { XDG_CACHE_HOME: '/nonexistent' } })
      : await execa(tool, [...path, '--help'], { reject: false, timeout: 60_000, env: { PAGER: 'cat', CLOUDSDK_CORE_DISABLE_PROMPTS: '1' } }).then((r) => ({
          code: r.exitCode ?? 1,
          stdout: String(r.stdout),
          stderr: String(r.stderr),
        }));
  if (result.code !== 0) return undefined;
  return result.stdout.replace(/\x1b\[[0-9;]*m/g, '');
}

/** Asks the tool for help on the longest command path that has some, and checks every flag. */
async function assertExists(invocation: Invocation): Promise<void> {
  // gcloud nests command groups (`run deploy`); tsko and kubectl have one command word.
  const firstOther = invocation.words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w));
  let path = invocation.words.slice(0, firstOther === -1 ? invocation.words.length : firstOther);
  if (invocation.tool !== 'gcloud') path = path.slice(0, 1);
  let text: string | undefined;
  while (path.length > 0 && (text = await help(invocation.tool, path)) === undefined) path = path.slice(0, -1);
  assert.ok(text !== undefined && path.length > 0, `${invocation.tool} ${invocation.words.join(' ')}: no such command`);
  const flags = flagsOf(invocation.words);
  for (const flag of flags) {
    const listed = new RegExp(`(^|[\\s,\\[])${flag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[=\\s,\\]]|$)`, 'm');
    assert.match(text, listed, `\`${invocation.tool} ${path.join(' ')} --help\` does not list ${flag} (used in: ${invocation.line})`);
  }
}

interface CloudBuild {
  substitutions: Record<string, string>;
  steps: Array<{ id: string; name: string; entrypoint?: string; args: string[]; env?: string[] }>;
}

interface Workflow {
  on: unknown;
  jobs: Record<string, { 'runs-on': string; env?: Record<string, string>; steps: Array<{ name?: string; uses?: string; run?: string; shell?: string }> }>;
}

let registry: DockerRegistry;
let kube: KubeDiscovery;
let cacheHome: string;

function tskoEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir(), KO_DEFAULTBASEIMAGE: 'builtin://static', SOURCE_DATE_EPOCH: undefined, ...extra };
}

describe('CI recipes', () => {
  before(async () => {
    registry = await startDockerRegistry();
    kube = await startKubeDiscovery(await makeTempDir('ci-kube'));
    cacheHome = await makeTempDir('ci-cache');
  });
  after(async () => {
    await kube?.stop();
    await registry?.stop();
  });

  describe('examples/cloudbuild.yaml', () => {
    let recipe: CloudBuild;
    const scriptOf = (step: CloudBuild['steps'][number]) => (step.entrypoint === 'bash' && step.args[0] === '-c' ? (step.args[1] ?? '') : [step.entrypoint ?? '', ...step.args].join(' '));

    before(async () => {
      recipe = parse(await readFile(join(repoRoot, 'examples/cloudbuild.yaml'), 'utf8')) as CloudBuild;
    });

    it('parses, builds in a Node image with npx tsko build and KO_DOCKER_REPO from $PROJECT_ID, and deploys that file with gcloud run deploy', () => {
      assert.ok(Array.isArray(recipe.steps) && recipe.steps.length >= 2);
      const buildIndex = recipe.steps.findIndex((step) => invocations(scriptOf(step)).some((i) => i.tool === 'tsko' && i.words[0] === 'build'));
      const build = recipe.steps[buildIndex];
      assert.ok(build, 'a step runs tsko build');
      assert.match(build.name, /^node:/, 'in a Node image');
      assert.match(scriptOf(build), /npx tsko build /);
      assert.ok(build.env?.some((e) => /^KO_DOCKER_REPO=.*\$PROJECT_ID/.test(e)), 'KO_DOCKER_REPO comes from $PROJECT_ID');
      const tskoBuild = invocations(scriptOf(build)).find((i) => i.tool === 'tsko' && i.words[0] === 'build') as Invocation;
      const refsFile = tskoBuild.words.find((w) => w.startsWith('--image-refs='))?.split('=')[1];
      assert.ok(refsFile?.startsWith('/workspace/'), 'the reference goes to a file the next step can read');

      const deploy = recipe.steps.slice(buildIndex + 1).flatMap((step) => invocations(scriptOf(step))).find((i) => i.tool === 'gcloud' && i.words[0] === 'run' && i.words[1] === 'deploy');
      assert.ok(deploy, 'a later step runs gcloud run deploy');
      assert.ok(deploy.words.includes(`--image=$(cat ${refsFile})`), `gcloud deploys the built reference: ${deploy.line}`);
    });

    it('runs only commands that exist, with flags their --help lists', async () => {
      const all = recipe.steps.flatMap((step) => invocations(scriptOf(step)));
      assert.deepEqual([...new Set(all.map((i) => `${i.tool} ${i.words[0]}`))].sort(), ['gcloud auth', 'gcloud run', 'tsko build', 'tsko login']);
      for (const invocation of all) await assertExists(invocation);
    });

    it("its tsko build line builds and pushes, writing the reference file gcloud reads", async (t) => {
      const build = recipe.steps.find((step) => step.name.startsWith('node:')) as CloudBuild['steps'][number];
      const workspace = await makeTempDir('ci-workspace', t);
      let script = scriptOf(build);
      for (const [key, value] of Object.entries(recipe.substitutions)) script = script.replaceAll(`\${${key}}`, value);
      script = script.replaceAll('/workspace/', `${workspace}/`);
      const line = invocations(script).find((i) => i.tool === 'tsko' && i.words[0] === 'build') as Invocation;
      const result = await runTsko(line.words, { env: tskoEnv({ KO_DOCKER_REPO: `${registry.host}/test-project/containers` }), cwd: repoRoot });
      assert.equal(result.code, 0, result.stderr);
      const ref = (await readFile(join(workspace, 'image.txt'), 'utf8')).trim();
      assert.equal(ref, result.stdout.trim());
      assert.match(ref, new RegExp(`^${registry.host}/test-project/containers/hello@sha256:[a-f0-9]{64}$`));
      const config = (await skopeoInspect(ref, { insecure: true, raw: true, config: true })) as { architecture: string };
      assert.equal(config.architecture, 'amd64');
    });
  });

  describe('examples/github-actions.yml', () => {
    let recipe: Workflow;
    let steps: Workflow['jobs'][string]['steps'];

    before(async () => {
      recipe = parse(await readFile(join(repoRoot, 'examples/github-actions.yml'), 'utf8')) as Workflow;
      const job = Object.values(recipe.jobs)[0];
      assert.ok(job, 'one job');
      steps = job.steps;
    });

    it('parses, and pipes tsko resolve into kubectl apply -f - with pipefail and KO_DOCKER_REPO set', () => {
      assert.ok(recipe.on);
      const job = Object.values(recipe.jobs)[0] as Workflow['jobs'][string];
      assert.ok(job.env?.KO_DOCKER_REPO, 'KO_DOCKER_REPO for every step');
      const step = steps.find((s) => /tsko resolve .*\| *kubectl apply -f -/.test(s.run ?? ''));
      assert.ok(step, 'a step runs tsko resolve | kubectl apply -f -');
      assert.equal(step.shell, 'bash', 'shell: bash sets pipefail, so a failed resolve fails the step');
      for (const action of ['actions/checkout', 'actions/setup-go', 'actions/setup-node']) assert.ok(steps.some((s) => s.uses?.startsWith(`${action}@`)), action);
    });

    it('runs only commands that exist, with flags their --help lists', async () => {
      const all = steps.flatMap((s) => invocations(s.run ?? ''));
      assert.deepEqual([...new Set(all.map((i) => `${i.tool} ${i.words[0]}`))].sort(), ['kubectl apply', 'tsko login', 'tsko resolve']);
      for (const invocation of all) await assertExists(invocation);
    });

    it('its resolve | kubectl apply line works on examples/hello/config', async (t) => {
      const run = steps.find((s) => /tsko resolve/.test(s.run ?? ''))?.run as string;
      const [resolve, apply] = invocations(run);
      assert.equal(resolve?.tool, 'tsko');
      assert.equal(apply?.tool, 'kubectl');
      const dir = await makeTempDir('ci-gha', t);
      // The workflow writes its refs file in the checkout; here it goes to a temp dir instead.
      const words = resolve.words.map((w) => (w.startsWith('--image-refs=') ? `--image-refs=${join(dir, 'image-refs.txt')}` : w));
      const resolved = await runTsko(words, { env: tskoEnv({ KO_DOCKER_REPO: `${registry.host}/owner` }), cwd: join(repoRoot, 'examples/hello') });
      assert.equal(resolved.code, 0, resolved.stderr);
      assert.match(resolved.stdout, new RegExp(`image: ${registry.host}/owner/hello-[a-f0-9]{32}@sha256:[a-f0-9]{64}   # replaced by`));
      const refs = (await readFile(join(dir, 'image-refs.txt'), 'utf8')).split('\n').filter(Boolean);
      assert.equal(refs.length, 1);
      assert.ok(resolved.stdout.includes(refs[0] as string));
      // The cluster is a discovery-only fake (no OpenAPI): --dry-run=client --validate=false.
      const applied = await execa('kubectl', [...(apply?.words ?? []), '--dry-run=client', '--validate=false'], { input: resolved.stdout, env: { KUBECONFIG: kube.kubeconfig }, reject: false, timeout: 60_000 });
      assert.equal(applied.exitCode, 0, applied.stderr);
      assert.deepEqual(applied.stdout.split('\n').sort(), ['deployment.apps/hello created (dry run)', 'service/hello created (dry run)']);
    });
  });
});
