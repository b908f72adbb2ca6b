// Config resolution: file discovery, validation with key paths, env overrides, ko's naming.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveConfig, KO_DEFAULT_BASE_IMAGE } from '../../src/config/resolve.js';
import { validateConfig } from '../../src/config/validate.js';
import { TskoError } from '../../src/errors.js';
import { imageName, appNameOf } from '../../src/publish/naming.js';
import { makeTempDir } from '../support/tmp.js';

describe('config', () => {
  it('validates with the exact key path of the first problem', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ builds: [{ main: './a' }, { dir: '.' }] }, /builds\[1\]\.main is required/],
      [{ builds: [{ main: 1 }] }, /builds\[0\]\.main must be a string/],
      [{ defaultEnv: ['NOEQUALS'] }, /defaultEnv\[0\] must look like KEY=VALUE/],
      [{ baseImageOverrides: { 'example.com/a': 3 } }, /baseImageOverrides\.example\.com\/a must be a string/],
      [{ dev: { port: 70000 } }, /dev\.port must be a port number/],
      [{ defaultPlatforms: 'linux/amd64' }, /defaultPlatforms must be a list of strings/],
      [{ unknownKey: true }, /unknownKey is not a known key/],
      [[], /must be an object/],
    ];
    for (const [value, pattern] of cases) {
      assert.throws(() => validateConfig(value, 'tsko.config.ts'), (err: unknown) => err instanceof TskoError && err.code === 'CONFIG_INVALID' && pattern.test(err.message), JSON.stringify(value));
    }
    assert.doesNotThrow(() => validateConfig({ builds: [{ main: '.', flags: '-tags netgo', ldflags: ['-s'] }], dev: { services: ['./a', { path: './b', port: 9000 }] } }, 'x'));
  });

  it('finds tsko.config.ts in the working directory or a parent, .ko.yaml only in the working directory', async (t) => {
    const root = await makeTempDir('config-find', t);
    await mkdir(join(root, '.git'));
    await mkdir(join(root, 'svc', 'cmd'), { recursive: true });
    await writeFile(join(root, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static', defaultLdflags: ['-s'] };\n");
    const nested = await resolveConfig({ cwd: join(root, 'svc', 'cmd'), env: {} });
    assert.equal(nested.configFile, join(root, 'tsko.config.ts'));
    assert.equal(nested.defaultBaseImage, 'builtin://static');
    assert.deepEqual(nested.defaultLdflags, ['-s']);

    await writeFile(join(root, 'svc', '.ko.yaml'), 'defaultBaseImage: example.com/base:1\nbuilds:\n- main: ./cmd\n  flags: -tags netgo\n');
    const yaml = await resolveConfig({ cwd: join(root, 'svc'), env: {} });
    assert.equal(yaml.defaultBaseImage, 'example.com/base:1');
    assert.deepEqual(yaml.builds[0]?.flags, ['-tags', 'netgo']);
    assert.equal(yaml.builds[0]?.dir, join(root, 'svc'));
  });

  it('lets KO_* environment override the file, and defaults to ko\'s base', async (t) => {
    const dir = await makeTempDir('config-env', t);
    const plain = await resolveConfig({ cwd: dir, env: {} });
    assert.equal(plain.defaultBaseImage, KO_DEFAULT_BASE_IMAGE);
    assert.equal(plain.goBinary, 'go');
    const env = await resolveConfig({ cwd: dir, env: { KO_DEFAULTBASEIMAGE: 'x.io/base', KO_DEFAULTPLATFORMS: 'linux/amd64, linux/arm64', KO_GO_PATH: '/opt/go/bin/go', XDG_CACHE_HOME: '/c' } });
    assert.equal(env.defaultBaseImage, 'x.io/base');
    assert.deepEqual(env.defaultPlatforms, ['linux/amd64', 'linux/arm64']);
    assert.equal(env.goBinary, '/opt/go/bin/go');
    assert.equal(env.cacheDir, '/c/tsko');
  });

  it('names images as ko does', () => {
    assert.match(imageName('gcr.io/proj', 'github.com/me/app/cmd/Server', 'md5'), /^gcr\.io\/proj\/server-[a-f0-9]{32}$/, 'lower-cased');
    assert.match(imageName('gcr.io/proj', 'example.com/hello', 'md5'), /^gcr\.io\/proj\/hello-124ec4359fcc3b362d8aa16b0f28dd36$/);
    assert.equal(imageName('gcr.io/proj', 'example.com/hello', 'base'), 'gcr.io/proj/hello');
    assert.equal(imageName('gcr.io/proj/', 'Example.com/Hello', 'preserve'), 'gcr.io/proj/example.com/hello');
    assert.equal(imageName('gcr.io/proj', 'example.com/hello', 'bare'), 'gcr.io/proj');
    assert.equal(appNameOf('example.com/hello'), 'hello');
    assert.equal(appNameOf('.'), 'ko-app');
  });
});
