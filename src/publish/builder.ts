// The Builder: a Go main package and a platform in, an image value out (ko's build.Interface).
// It finds the package, picks its build config and base, runs `go build` to a stable output path
// (so a warm build lets Go skip relinking), and appends the kodata and binary layers.
import { stat } from 'node:fs/promises';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { ResolvedBuild, ResolvedConfig } from '../config/resolve.js';
import { goBuild } from '../go/build.js';
import { listMainPackage, listPackage, type GoPackage } from '../go/list.js';
import { formatPlatform } from '../go/platform.js';
import { appendAppLayers, createdFromEpoch } from '../image/assemble.js';
import { familyOf, MEDIA_TYPES, OCI_LAYER } from '../image/media-types.js';
import type { LayerCompression } from '../image/layer-writer.js';
import type { BaseImage, Image, Layer, Platform } from '../image/types.js';
import { readGoBuildId } from '../go/buildid.js';
import { binaryLayer, kodataLayer } from './app-layers.js';
import type { BaseResolver } from './base.js';
import { appNameOf } from './naming.js';

export interface ImageOptions {
  user?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** --ldflags: overrides the build config's and the default ldflags. */
  ldflags?: string[];
  /** Extra go build flags after the configured ones (e.g. --disable-optimizations). */
  extraGoFlags?: string[];
  /**
   * 'none' writes the app layers as plain tar (OCI bases only; Docker's format has no such
   * layer type): the dev loop's choice when the registry is on this machine.
   */
  layerCompression?: LayerCompression;
}

export interface ResolvedTarget {
  pkg: GoPackage;
  /** Where go runs for this package. */
  cwd: string;
  build: ResolvedBuild | undefined;
}

export interface BuiltImage {
  importPath: string;
  appName: string;
  platform: Platform;
  image: Image;
  base: BaseImage;
  binaryPath: string;
  /** The Go build ID of the binary (undefined for non-ELF output). */
  buildId: string | undefined;
}

export interface BuilderOptions {
  config: ResolvedConfig;
  bases: BaseResolver;
  events: EventBus;
  image?: ImageOptions;
}

export class Builder {
  private readonly config: ResolvedConfig;
  private readonly bases: BaseResolver;
  private readonly events: EventBus;
  private readonly imageOptions: ImageOptions;
  private buildImportPaths: Promise<Map<string, ResolvedBuild>> | undefined;
  /** The last binary layer per output path, keyed by build ID: an unchanged binary is not re-tarred. */
  private readonly binaryLayers = new Map<string, { buildId: string; mediaType: string; layer: Layer }>();

  constructor(options: BuilderOptions) {
    this.config = options.config;
    this.bases = options.bases;
    this.events = options.events;
    this.imageOptions = options.image ?? {};
  }

  /** An argument (import path, `ko://` path or ./dir) to its main package and build settings. */
  async resolveTarget(target: string, signal?: AbortSignal): Promise<ResolvedTarget> {
    const spec = target.startsWith('ko://') ? target.slice('ko://'.length).trim() : target;
    const local = isLocalPath(spec);
    // A ./dir is listed from inside itself so its own go.mod is found, wherever tsko runs from.
    const cwd = local ? resolvePath(this.config.cwd, spec) : this.config.cwd;
    // go runs inside the directory, so a missing one would surface as "go not found" (ENOENT).
    if (local && !(await stat(cwd).then((s) => s.isDirectory(), () => false))) {
      throw new TskoError('GO_LIST', `cannot load package "${spec}": ${cwd} is not a directory`, { hint: 'check the path; ./dirs are relative to where tsko runs' });
    }
    const pkg = await listMainPackage(local ? '.' : spec, this.goRun(cwd, signal)).catch((err: unknown) => {
      if (err instanceof TskoError && local && err.code === 'GO_LIST') {
        throw new TskoError('GO_LIST', err.message.replace('"."', `"${spec}"`), { hint: err.hint, detail: err.detail });
      }
      throw err;
    });
    const build = (await this.buildConfigs(signal)).get(pkg.importPath);
    return { pkg, cwd: build?.dir ?? (local ? cwd : this.config.cwd), build };
  }

  baseNameFor(importPath: string): string {
    return this.config.baseImageOverrides.get(importPath.toLowerCase()) ?? this.config.defaultBaseImage;
  }

  async build(target: ResolvedTarget, platform: Platform, signal?: AbortSignal, events: EventBus = this.events): Promise<BuiltImage> {
    const { pkg } = target;
    const importPath = pkg.importPath;
    const appName = appNameOf(importPath);
    const baseName = this.baseNameFor(importPath);
    const platformName = formatPlatform(platform);

    // The base and the compile are independent: overlap them.
    const basePromise = this.bases.resolve(baseName, platform, signal);
    basePromise.catch(() => undefined);

    const output = join(this.config.cacheDir, 'bin', importPath, platformName.replaceAll('/', '-'), appName);
    events.emit({ type: 'stage.start', stage: 'build', importPath, platform: platformName });
    const started = performance.now();
    try {
      await goBuild({
        goBinary: this.config.goBinary,
        importPath,
        cwd: target.cwd,
        platform,
        baseEnv: { ...this.config.env },
        env: target.build?.env ?? [...this.config.defaultEnv],
        flags: [...(target.build?.flags ?? this.config.defaultFlags), ...(this.imageOptions.extraGoFlags ?? [])],
        ldflags: this.imageOptions.ldflags ?? target.build?.ldflags ?? [...this.config.defaultLdflags],
        output,
        ...(signal ? { signal } : {}),
      });
    } finally {
      events.emit({ type: 'stage.end', stage: 'build', importPath, platform: platformName, ms: performance.now() - started, ok: !signal?.aborted });
    }
    const buildMs = performance.now() - started;
    events.emit({ type: 'go.build', importPath, platform: platformName, output, ms: buildMs });

    const base = await basePromise;
    events.emit({ type: 'base.resolved', importPath, base: base.name, digest: base.digest, cached: false });

    const layerStarted = performance.now();
    events.emit({ type: 'stage.start', stage: 'layer', importPath, platform: platformName });
    const family = familyOf(base.manifestMediaType);
    const compression: LayerCompression = family === 'oci' && this.imageOptions.layerCompression === 'none' ? 'none' : 'gzip';
    const layerType = compression === 'none' ? OCI_LAYER : MEDIA_TYPES[family].layer;
    const kodataSeconds = epochSeconds(this.config.kodataDateEpoch, 'KO_DATA_DATE_EPOCH');
    const buildId = await readGoBuildId(output).catch(() => undefined);
    const [kodata, binary] = await Promise.all([
      kodataLayer(pkg.dir, layerType, kodataSeconds, compression),
      this.binaryLayerFor(output, appName, layerType, buildId, compression),
    ]);
    let created: string;
    try {
      created = createdFromEpoch(this.config.sourceDateEpoch);
    } catch (err) {
      throw new TskoError('CONFIG_INVALID', (err as Error).message);
    }
    const image = appendAppLayers(base, {
      importPath,
      appName,
      platform,
      kodataLayer: kodata,
      binaryLayer: binary,
      created,
      ...(this.imageOptions.user !== undefined ? { user: this.imageOptions.user } : {}),
      ...(this.imageOptions.labels ? { labels: this.imageOptions.labels } : {}),
      ...(this.imageOptions.annotations ? { annotations: this.imageOptions.annotations } : {}),
    });
    const layerMs = performance.now() - layerStarted;
    events.emit({ type: 'layer.built', importPath, digest: binary.digest, diffId: binary.diffId, size: binary.size, ms: layerMs });
    events.emit({ type: 'stage.end', stage: 'layer', importPath, platform: platformName, ms: layerMs, ok: true });
    return { importPath, appName, platform, image, base, binaryPath: output, buildId };
  }

  private async binaryLayerFor(output: string, appName: string, mediaType: string, buildId: string | undefined, compression: LayerCompression): Promise<Layer> {
    const cached = this.binaryLayers.get(output);
    if (buildId && cached && cached.buildId === buildId && cached.mediaType === mediaType) return cached.layer;
    const layer = await binaryLayer(output, appName, mediaType, compression);
    if (buildId) this.binaryLayers.set(output, { buildId, mediaType, layer });
    return layer;
  }

  private goRun(cwd: string, signal?: AbortSignal) {
    return { goBinary: this.config.goBinary, cwd, env: { ...this.config.env }, ...(signal ? { signal } : {}) };
  }

  /** The import path each config `builds` entry names (ko matches builds by import path). */
  private buildConfigs(signal?: AbortSignal): Promise<Map<string, ResolvedBuild>> {
    this.buildImportPaths ??= (async () => {
      const map = new Map<string, ResolvedBuild>();
      for (const build of this.config.builds) {
        const main = isLocalPath(build.main) || isAbsolute(build.main) ? build.main : `./${build.main}`;
        const pkg = await listPackage(main, this.goRun(build.dir, signal)).catch((err: unknown) => {
          throw new TskoError('CONFIG_INVALID', `builds entry ${build.id ?? build.main}: ${(err as Error).message}`);
        });
        map.set(pkg.importPath, build);
      }
      return map;
    })();
    return this.buildImportPaths;
  }
}

export function isLocalPath(spec: string): boolean {
  return spec === '.' || spec === '..' || spec.startsWith('./') || spec.startsWith('../') || isAbsolute(spec);
}

function epochSeconds(value: string | undefined, name: string): number {
  if (value === undefined || value === '') return 0;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 0) throw new TskoError('CONFIG_INVALID', `${name} must be a whole number of seconds, got "${value}"`);
  return seconds;
}
