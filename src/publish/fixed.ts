// Stand-ins for the two seams (ko's internal/testing/fixed.go): a Builder that answers fixed images
// by import path and a Publisher that answers fixed references, each recording what it was asked.
// With them, everything above the seams (the iteration runner, resolve, the dev loop's scheduling)
// is tested without Go or a registry. They time their work through stage() as the real ones do.
import { abortable } from '../abort.js';
import { TskoError } from '../errors.js';
import { formatPlatform } from '../go/platform.js';
import { appendAppLayers } from '../image/assemble.js';
import { builtinStaticBase } from '../image/builtin-base.js';
import { writeLayer } from '../image/layer-writer.js';
import { OCI_LAYER_GZIP } from '../image/media-types.js';
import type { Platform } from '../image/types.js';
import { stage } from '../stage.js';
import type { Builder, BuiltImage, ResolvedTarget } from './builder.js';
import { appNameOf } from './naming.js';
import type { Published, Publisher } from './publisher.js';

/** What a fixed builder answers for an import path: an image, or the error its build fails with. */
export type FixedBuild = BuiltImage | Error | ((platform: Platform) => BuiltImage | Error | Promise<BuiltImage | Error>);

export interface FixedBuilder extends Builder {
  /** `importPath@os/arch` of every build asked for, in order. */
  readonly builds: string[];
}

export function fixedBuilder(entries: ReadonlyMap<string, FixedBuild>): FixedBuilder {
  const builds: string[] = [];
  return {
    builds,
    resolve(spec) {
      if (!entries.has(spec)) return Promise.reject(new TskoError('GO_LIST', `cannot load package "${spec}": not one of the fixed builds`));
      return Promise.resolve(fixedTarget(spec));
    },
    async build(target, platform, { events, signal }) {
      const importPath = target.pkg.importPath;
      const fields = { importPath, platform: formatPlatform(platform) };
      builds.push(`${importPath}@${fields.platform}`);
      const entry = entries.get(importPath);
      if (entry === undefined) throw new TskoError('GO_LIST', `cannot load package "${importPath}": not one of the fixed builds`);
      const answer = await stage(
        events,
        'build',
        async () => {
          // As a killed `go build`: an abort ends the build at once, whatever it waits for.
          const value = await abortable(Promise.resolve(typeof entry === 'function' ? entry(platform) : entry), signal);
          if (value instanceof Error) throw value;
          return value;
        },
        fields,
        signal,
      );
      return stage(events, 'layer', () => Promise.resolve(answer), fields, signal);
    },
  };
}

/** What a fixed builder resolves a spec to: the spec as the import path of a main package nowhere on disk. */
export function fixedTarget(importPath: string): ResolvedTarget {
  return { pkg: { importPath, name: 'main', dir: '/nonexistent', embedFiles: [] }, cwd: '/nonexistent', build: undefined };
}

/** A real image value (builtin://static plus a layer holding `binary`), without Go. */
export async function fixedImage(importPath: string, binary: string, platform: Platform = { os: 'linux', architecture: 'amd64' }): Promise<BuiltImage> {
  const base = await builtinStaticBase(platform);
  const appName = appNameOf(importPath);
  const [kodata, layer] = await Promise.all([
    writeLayer([{ name: 'var/run/ko', type: 'directory', mode: 0o555 }], OCI_LAYER_GZIP),
    writeLayer([{ name: `ko-app/${appName}`, type: 'file', mode: 0o555, content: Buffer.from(binary) }], OCI_LAYER_GZIP),
  ]);
  const image = appendAppLayers(base, { importPath, appName, platform, kodataLayer: kodata, binaryLayer: layer, created: '1970-01-01T00:00:00Z' });
  return { importPath, appName, platform, image, base, binaryPath: '/nonexistent', buildId: undefined };
}

export interface FixedPublisher extends Publisher {
  /** The import paths published, in order. */
  readonly published: string[];
}

/** Answers `<repo>/<app>@<digest>` without pushing; `fail` makes every publish fail with it. */
export function fixedPublisher(repo: string, fail?: Error): FixedPublisher {
  const published: string[] = [];
  return {
    published,
    publish(result) {
      published.push(result.importPath);
      if (fail) return Promise.reject(fail);
      const answer: Published = {
        importPath: result.importPath,
        reference: `${repo}/${appNameOf(result.importPath)}@${result.digest}`,
        digest: result.digest,
        sboms: [],
        stats: { blobsPushed: result.images.length, blobsSkipped: 0, bytesPushed: 0 },
      };
      return Promise.resolve(answer);
    },
  };
}
