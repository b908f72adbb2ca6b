// Config resolution: file discovery, validation with key paths, env overrides, ko's naming.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveConfig, KO_DEFAULT_BASE_IMAGE } from '../../src/config/resolve.js';
import { closestName, editDistance } from '../../src/config/suggest.js';
import { configKeyPaths, validateConfig } from '../../src/config/validate.js';
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
      [{ unknownKey: true }, /unknownKey is not a known key \(known: defaultBaseImage, /],
      [{ dev: { prot: 8080 } }, /^tsko\.config\.ts: dev\.prot is not a known key: did you mean port\?$/],
      [{ dev: { kubernetes: { namspace: 'x' } } }, /^tsko\.config\.ts: dev\.kubernetes\.namspace is not a known key: did you mean namespace\?$/],
      [{ dev: { services: [{ path: '.', prot: 1 }] } }, /^tsko\.config\.ts: dev\.services\[0\]\.prot is not a known key: did you mean port\?$/],
      [{ builds: [{ main: '.', ldflag: [] }] }, /builds\[0\]\.ldflag is not a known key: did you mean ldflags\?/],
      [{ defaultbaseimage: 'x' }, /defaultbaseimage is not a known key: did you mean defaultBaseImage\?/],
      [{ dev: { somethingElse: 1 } }, /^tsko\.config\.ts: dev\.somethingElse is not a known key \(known: services, target, port, keepImages, kubernetes, cloudrun\)$/],
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

  it('suggests the closest known name only when it is close', () => {
    assert.equal(closestName('prot', ['services', 'target', 'port']), 'port', 'a swap is one edit');
    assert.equal(closestName('registy', ['builds', 'registry']), 'registry');
    assert.equal(closestName('PORT', ['port']), 'port', 'another case');
    assert.equal(closestName('xyz', ['port', 'target']), undefined, 'nothing near');
    assert.equal(closestName('deploy', ['deployment', 'context']), undefined, 'a prefix is not a typo');
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('ab', 'ba'), 1);
  });

  it('lists every key path the schema accepts', () => {
    const paths = configKeyPaths();
    for (const path of ['defaultBaseImage', 'builds[].main', 'dev.port', 'dev.services[].path', 'dev.services[].port', 'dev.kubernetes.manifests', 'dev.cloudrun.timeout', 'registry.caFile']) {
      assert.ok(paths.includes(path), `${path} in ${paths.join(', ')}`);
    }
    assert.equal(new Set(paths).size, paths.length, 'each once');
  });

  it('looks for the config from each ./dir target, up to the repository or Go module root', async (t) => {
    const root = await makeTempDir('config-targets', t);
    // Outside a repository: a module's config is found from its packages; a config above the
    // module root (a stray one in a parent such as $HOME) is not.
    await writeFile(join(root, 'tsko.config.ts'), "export default { defaultBaseImage: 'stray.example/base' };\n");
    const mod = join(root, 'svc');
    await mkdir(join(mod, 'cmd', 'app'), { recursive: true });
    await writeFile(join(mod, 'go.mod'), 'module example.com/svc\n');
    const inside = await resolveConfig({ cwd: join(mod, 'cmd', 'app'), env: {} });
    assert.equal(inside.configFile, undefined, 'not above the module root');
    assert.equal(inside.defaultBaseImage, KO_DEFAULT_BASE_IMAGE);
    await writeFile(join(mod, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
    assert.equal((await resolveConfig({ cwd: join(mod, 'cmd', 'app'), env: {} })).configFile, join(mod, 'tsko.config.ts'));

    // From elsewhere, the target's ./dir leads to it (build and run pass `targets`; dev and deploy `dev.targets`).
    const elsewhere = await makeTempDir('config-elsewhere', t);
    const fromBuild = await resolveConfig({ cwd: elsewhere, env: {}, command: 'build', targets: [join(mod, 'cmd', 'app')] });
    assert.equal(fromBuild.configFile, join(mod, 'tsko.config.ts'));
    const fromDev = await resolveConfig({ cwd: root, env: {}, command: 'dev', dev: { targets: ['./svc/cmd/app'] } });
    assert.equal(fromDev.configFile, join(mod, 'tsko.config.ts'), "the service's config wins over the one in cwd");
    assert.equal((await resolveConfig({ cwd: root, env: {}, command: 'build', targets: ['example.com/svc/cmd/app'] })).configFile, join(root, 'tsko.config.ts'), 'an import path searches from cwd only');

    // Two services with two configs: one line asking for --config.
    const other = join(root, 'other');
    await mkdir(other);
    await writeFile(join(other, 'go.mod'), 'module example.com/other\n');
    await writeFile(join(other, 'tsko.config.ts'), 'export default {};\n');
    await assert.rejects(
      resolveConfig({ cwd: root, env: {}, command: 'build', targets: ['./svc/cmd/app', './other'] }),
      (err: unknown) => err instanceof TskoError && err.code === 'CONFIG_LOAD' && /different config files \(\.\/svc\/cmd\/app → svc\/tsko\.config\.ts, \.\/other → other\/tsko\.config\.ts\)/.test(err.message),
    );
  });

  it('names file:line:col for a syntax error in tsko.config.ts, tsko.config.mjs or .ko.yaml', async (t) => {
    const dir = await makeTempDir('config-syntax', t);
    const cases: Array<[string, string, RegExp]> = [
      ['tsko.config.ts', "const base: string = 'builtin://static';\nexport default { defaultBaseImage: base, dev: { port: 1 } );\n", /^tsko\.config\.ts:2:\d+: syntax error: Expected ',', got '\)'$/],
      ['tsko.config.mjs', 'export default {\n  dev: {\n    port: 1 +\n  },\n};\n', /^tsko\.config\.mjs:4:3: syntax error: Unexpected token '}'$/],
      ['.ko.yaml', 'defaultBaseImage: x\nbuilds:\n  - main: .\n  bad: [\n', /^\.ko\.yaml:4:\d+: /],
    ];
    for (const [name, text, pattern] of cases) {
      const sub = join(dir, name.replace(/\W/g, '_'));
      await mkdir(sub);
      await writeFile(join(sub, name), text);
      await assert.rejects(resolveConfig({ cwd: sub, env: {} }), (err: unknown) => err instanceof TskoError && err.code === 'CONFIG_INVALID' && pattern.test(err.message), `${name}`);
    }
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
