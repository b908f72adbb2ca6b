// What the remote-target tests share: a temp copy of examples/hello (builtin base, so no network),
// an environment that pushes to a private embedded registry on a free loopback port, and a
// `tsko deploy` runner.
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './docker-registry.js';
import { goCacheDir } from './go-env.js';
import { makeTempDir, type AfterHook } from './tmp.js';
import { repoRoot, runTsko, type TskoRunResult } from './tsko-cli.js';

export interface HelloCopy {
  dir: string;
  /** Environment for tsko: own cache, own embedded registry, HOME in a temp dir. */
  env: Record<string, string | undefined>;
  /** Rewrites main.go so the binary (and so the image digest) changes. */
  setVersion(text: string): Promise<void>;
  deploy(args: string[], env?: Record<string, string | undefined>): Promise<TskoRunResult>;
}

export const DIGEST_REF = /^127\.0\.0\.1:\d+\/hello-[0-9a-f]{32}@sha256:[0-9a-f]{64}$/;

export async function helloCopy(prefix: string, t?: AfterHook): Promise<HelloCopy> {
  const dir = await makeTempDir(`${prefix}-hello`, t);
  await cp(join(repoRoot, 'examples/hello'), dir, { recursive: true });
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  const home = await makeTempDir(`${prefix}-home`, t);
  const env: Record<string, string | undefined> = {
    HOME: home,
    XDG_CACHE_HOME: join(home, '.cache'),
    GOCACHE: goCacheDir(),
    TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`,
    KO_DOCKER_REPO: undefined,
    KUBECONFIG: undefined,
    CLOUDSDK_CONFIG: join(home, 'gcloud'),
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    CLOUDSDK_METRICS_ENVIRONMENT: 'tsko-test',
    CLOUDSDK_CORE_CHECK_GCE_METADATA: 'false',
    // google-auth-library must never probe the real metadata server from a test.
    METADATA_SERVER_DETECTION: 'none',
    GCE_METADATA_HOST: '127.0.0.1:9',
    GOOGLE_APPLICATION_CREDENTIALS: undefined,
    CLOUDSDK_AUTH_ACCESS_TOKEN: undefined,
    CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN: undefined,
    CLOUDSDK_CORE_PROJECT: undefined,
    CLOUDSDK_RUN_REGION: undefined,
  };
  const main = join(dir, 'main.go');
  return {
    dir,
    env,
    setVersion: async (text) => {
      const source = (await import('node:fs/promises')).readFile;
      const original = await source(join(repoRoot, 'examples/hello/main.go'), 'utf8');
      await writeFile(main, original.replace('hello v1', text));
    },
    deploy: (args, extra = {}) => runTsko(['deploy', ...args], { cwd: dir, env: { ...env, ...extra }, timeoutMs: 180_000 }),
  };
}

/** stderr's `tsko: …` line (the one-line error). */
export function errorLine(stderr: string): string {
  return stderr.split('\n').find((line) => line.startsWith('tsko: ')) ?? `(no error line in)\n${stderr}`;
}
