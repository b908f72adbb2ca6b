// The go builder (ko's gobuild): implements Builder. It finds the package, picks its build config
// and base, runs `go build` to a stable output path (so a warm build lets Go skip relinking), and
// appends the kodata and binary layers; an unchanged binary (same Go build ID) is not re-tarred.
import { stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { abortable } from '../abort.js';
import { isTskoError, TskoError } from '../errors.js';
import { KO_DEFAULT_BASE_IMAGE, type ResolvedBuild, type ResolvedConfig } from '../config/resolve.js';
import { BUILTIN_STATIC } from '../image/builtin-base.js';
import { goBuild } from '../go/build.js';
import { listMainPackage, listPackage } from '../go/list.js';
import { formatPlatform } from '../go/platform.js';
import { appContainerConfig, appendAppLayers, createdFromEpoch } from '../image/assemble.js';
import { appLayerFormat, familyOf } from '../image/media-types.js';
import type { LayerCompression, LayerTap } from '../image/layer-writer.js';
import type { Layer, Platform } from '../image/types.js';
import { readGoBuildId } from '../go/buildid.js';
import type { LayerFiles } from '../image/layer-files.js';
import { LayerMembers, type MemberIndex } from '../image/member-reuse.js';
import { loadMembers, saveMembers, type KeptMembers } from './member-cache.js';
import { binaryLayer, binaryLayerFiles, filesOfLayer, kodataLayer, snapshotBinary } from './app-layers.js';
import { stage } from '../stage.js';
import type { BaseResolver } from './base.js';
import { isLocalPath, type Builder, type BuildContext, type BuiltImage, type ImageOptions, type ResolvedTarget } from './builder.js';
import { appNameOf } from './naming.js';

export interface GoBuilderOptions {
  config: ResolvedConfig;
  bases: BaseResolver;
  image?: ImageOptions;
  /** Where app layers are written (else memory); layers replaced by a newer build are removed from it. */
  layerFiles?: LayerFiles;
  /** A streamed upload for a new binary layer as it is written (the remote path); none: no streaming. */
  streamLayer?: (importPath: string, platform: string, signal?: AbortSignal) => LayerTap | undefined;
  /** Called once a go build runs: work that can share the machine with it (loading the HTTP client). */
  whileBuilding?: () => void;
}

/** Build IDs whose layers this builder wrote, remembered to this many (a revert to one is not streamed). */
const LAYERED_BUILD_IDS = 256;

export class GoBuilder implements Builder {
  private readonly config: ResolvedConfig;
  private readonly bases: BaseResolver;
  private readonly imageOptions: ImageOptions;
  private readonly layerFiles: LayerFiles | undefined;
  /** The app layers last made per output path, whose files go once a newer build replaces them. */
  private readonly appLayers = new Map<string, Layer[]>();
  private buildImportPaths: Promise<Map<string, ResolvedBuild>> | undefined;
  /** Output paths built once already: only a binary's first build asks go how much it compiled. */
  private readonly builtOutputs = new Set<string>();
  /** The last binary layer per output path, keyed by build ID: an unchanged binary is not re-tarred. */
  private readonly binaryLayers = new Map<string, { buildId: string; mediaType: string; layer: Layer }>();
  private readonly streamLayer: GoBuilderOptions['streamLayer'];
  private readonly whileBuilding: GoBuilderOptions['whileBuilding'];
  /** The gzip members of the last binary layer per output path, reused for a rebuild's unchanged blocks. */
  private readonly binaryMembers = new Map<string, { path: string; mediaType: string; index: MemberIndex }>();
  /** Build IDs (with their media type) layered already, oldest first. */
  private readonly layeredBuildIds = new Set<string>();
  /** What an earlier command kept per output path for member reuse, loaded at most once. */
  private readonly keptMembers = new Map<string, Promise<KeptMembers | undefined>>();
  /** Layers being kept for a later command's member reuse (member-cache.ts). */
  private readonly keeping = new Set<Promise<void>>();

  constructor(options: GoBuilderOptions) {
    this.config = options.config;
    this.bases = options.bases;
    this.imageOptions = options.image ?? {};
    this.layerFiles = options.layerFiles;
    this.streamLayer = options.streamLayer;
    this.whileBuilding = options.whileBuilding;
  }

  async resolve(target: string, signal?: AbortSignal): Promise<ResolvedTarget> {
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

  async build(target: ResolvedTarget, platform: Platform, { events, signal, onBinary }: BuildContext): Promise<BuiltImage> {
    const { pkg } = target;
    const importPath = pkg.importPath;
    const appName = appNameOf(importPath);
    const baseName = baseImageFor(this.config, importPath);
    const fields = { importPath, platform: formatPlatform(platform) };

    // The base and the compile are independent: overlap them. A base that cannot be had (no
    // network for ko's default) fails the build at once, not after a cold compile.
    const baseFailed = new AbortController();
    const basePromise = this.bases.resolve(baseName, platform, signal).catch((err: unknown) => {
      throw withOfflineBaseHint(err, baseName, this.config);
    });
    basePromise.catch((err: unknown) => baseFailed.abort(err));
    const buildSignal = signal ? AbortSignal.any([signal, baseFailed.signal]) : baseFailed.signal;

    const output = join(this.config.cacheDir, 'bin', importPath, fields.platform.replaceAll('/', '-'), appName);
    // Whether a first iteration was cold is go's to say (its build cache may be warm already); the
    // action graph it writes for that costs 10-30 ms, so only the dev loop and `tsko deploy` (which
    // label their first iteration) ask, and only on a binary's first build.
    const first = this.config.dev !== undefined && !this.builtOutputs.has(output);
    // What the output held before this build (a one-shot command's earlier run left it): when go
    // relinks it to another binary, its layer is new, and can go up while it is compressed.
    const previousBuildId = this.binaryLayers.has(output) ? undefined : readGoBuildId(output).catch(() => undefined);
    // A process's first build of it may reuse the gzip members an earlier command kept; reading
    // and checking them (once per process: later builds have their own) overlaps the compile.
    const keptMembers = this.keptMembersOf(output);
    const { ms: buildMs, work } = await stage(
      events,
      'build',
      async () => {
        const started = performance.now();
        const work = await goBuild({
          goBinary: this.config.goBinary,
          importPath,
          cwd: target.cwd,
          platform,
          baseEnv: { ...this.config.env },
          env: target.build?.env ?? [...this.config.defaultEnv],
          flags: [...(target.build?.flags ?? this.config.defaultFlags), ...(this.imageOptions.extraGoFlags ?? [])],
          ldflags: this.imageOptions.ldflags ?? target.build?.ldflags ?? [...this.config.defaultLdflags],
          output,
          ...(first ? { actionGraph: `${output}.actions.json` } : {}),
          ...(this.whileBuilding ? { whileRunning: this.whileBuilding } : {}),
          signal: buildSignal,
        }).catch((err: unknown) => {
          throw baseFailed.signal.aborted && !signal?.aborted ? baseFailed.signal.reason : err;
        });
        this.builtOutputs.add(output);
        return { ms: performance.now() - started, work };
      },
      fields,
      signal,
    );
    events.emit({ type: 'go.build', importPath, platform: fields.platform, output, ms: buildMs, ...(work ?? {}) });

    return stage(
      events,
      'layer',
      async () => {
        const started = performance.now();
        const base = await basePromise;
        events.emit({ type: 'base.resolved', importPath, base: base.name, digest: base.digest, cached: false });
        const family = familyOf(base.manifestMediaType);
        const { compression, mediaType: layerType } = appLayerFormat(family, this.imageOptions.layerCompression, base.name);
        const kodataSeconds = epochSeconds(this.config.kodataDateEpoch, 'KO_DATA_DATE_EPOCH');
        const buildId = await readGoBuildId(output).catch(() => undefined);
        const appOptions = {
          importPath,
          appName,
          platform,
          created: this.created(),
          ...(this.imageOptions.user !== undefined ? { user: this.imageOptions.user } : {}),
          ...(this.imageOptions.labels ? { labels: this.imageOptions.labels } : {}),
          ...(this.imageOptions.annotations ? { annotations: this.imageOptions.annotations } : {}),
        };
        const kodataPromise = kodataLayer(pkg.dir, layerType, kodataSeconds, compression, this.layerFiles);
        kodataPromise.catch(() => undefined);
        // A new binary is offered to the caller before it is packed: the local target starts the
        // revision from a snapshot of it while the layer is tarred and hashed from the same snapshot.
        let snapshot: string | undefined;
        if (onBinary && buildId && this.layerFiles && !this.reusableBinaryLayer(output, buildId, layerType)) {
          snapshot = await snapshotBinary(output, this.layerFiles);
          const kodata = await kodataPromise;
          const config = { os: platform.os, architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}), config: appContainerConfig(base.config, appOptions) };
          await onBinary({ buildId, runnable: { config, lower: [...base.layers, kodata], top: { files: binaryLayerFiles(appName, snapshot) } } })?.catch(() => undefined);
        }
        const [kodata, binary] = await Promise.all([
          kodataPromise,
          this.binaryLayerFor(output, appName, layerType, buildId, compression, { importPath, platform: fields.platform, signal, previousBuildId: await previousBuildId, keptMembers: await keptMembers }, snapshot),
        ]);
        await this.replaceAppLayers(output, [kodata, binary]);
        const image = appendAppLayers(base, { ...appOptions, kodataLayer: kodata, binaryLayer: binary });
        events.emit({ type: 'layer.built', importPath, digest: binary.digest, diffId: binary.diffId, size: binary.size, ms: performance.now() - started });
        return { importPath, appName, platform, image, base, binaryPath: output, buildId };
      },
      fields,
      signal,
    );
  }

  /** Waits for what this builder still writes to the cache (before its layer files go). */
  async flush(): Promise<void> {
    await Promise.all([...this.keeping]);
  }

  private created(): string {
    try {
      return createdFromEpoch(this.config.sourceDateEpoch);
    } catch (err) {
      throw new TskoError('CONFIG_INVALID', (err as Error).message);
    }
  }

  private async binaryLayerFor(
    output: string,
    appName: string,
    mediaType: string,
    buildId: string | undefined,
    compression: LayerCompression,
    slot: { importPath: string; platform: string; signal: AbortSignal | undefined; previousBuildId?: string | undefined; keptMembers?: KeptMembers | undefined },
    snapshot?: string,
  ): Promise<Layer> {
    const cached = this.binaryLayers.get(output);
    if (buildId && this.reusableBinaryLayer(output, buildId, mediaType)) return (cached as { layer: Layer }).layer;
    // Streamed only when the layer is new by construction: a rebuild (in this process, or of the
    // binary an earlier command left at the output path) whose build ID — a hash of the binary's
    // inputs and content — changed and was never layered here. A first build, or a binary made
    // before (a revert), may already be in the registry: those go the ordinary way, where a HEAD
    // finds them and nothing is sent.
    const seen = buildId === undefined || this.layeredBuildIds.has(`${buildId} ${mediaType}`);
    const relinked = cached !== undefined || (slot.previousBuildId !== undefined && slot.previousBuildId !== buildId);
    const tap = this.streamLayer && relinked && !seen ? this.streamLayer(slot.importPath, slot.platform, slot.signal) : undefined;
    // The previous layer's file stays until this one is written (replaceAppLayers runs after); a
    // process's first build reuses the layer an earlier command kept beside the output.
    const reuse = compression === 'gzip' && this.layerFiles !== undefined;
    const inMemory = this.binaryMembers.get(output);
    const previous = reuse ? [inMemory, slot.keptMembers].find((members) => members?.mediaType === mediaType) : undefined;
    const members = reuse ? new LayerMembers(previous) : undefined;
    const layer = await binaryLayer(output, appName, mediaType, compression, this.layerFiles, tap, members, snapshot).catch((err: unknown) => {
      tap?.fail(err); // failed before any byte was written (the snapshot): the session is dropped
      throw err;
    });
    if (members && layer.path) {
      this.binaryMembers.set(output, { path: layer.path, mediaType, index: members.index });
      // Kept for the next command off this build's path; close() waits for it.
      const keeping = saveMembers(output, { path: layer.path, digestHex: layer.digest.slice('sha256:'.length), size: layer.size, mediaType }, members.index);
      this.keeping.add(keeping);
      void keeping.finally(() => this.keeping.delete(keeping));
    } else {
      this.binaryMembers.delete(output);
    }
    if (buildId) {
      this.binaryLayers.set(output, { buildId, mediaType, layer });
      this.layeredBuildIds.add(`${buildId} ${mediaType}`);
      if (this.layeredBuildIds.size > LAYERED_BUILD_IDS) this.layeredBuildIds.delete(this.layeredBuildIds.values().next().value as string);
    }
    return layer;
  }

  /**
   * The layer an earlier command kept for `output` (member-cache.ts), read and checked once per
   * process: a dev session with uncompressed layers never makes members of its own, and would
   * otherwise hash the kept file on every save.
   */
  private keptMembersOf(output: string): Promise<KeptMembers | undefined> | undefined {
    if (!this.layerFiles || this.binaryMembers.has(output)) return undefined;
    let kept = this.keptMembers.get(output);
    if (!kept) {
      kept = loadMembers(output);
      this.keptMembers.set(output, kept);
    }
    return kept;
  }

  /** The last layer of this output holds this very binary (same build ID): it is not packed again. */
  private reusableBinaryLayer(output: string, buildId: string, mediaType: string): boolean {
    const cached = this.binaryLayers.get(output);
    return cached !== undefined && cached.buildId === buildId && cached.mediaType === mediaType;
  }

  /**
   * The files of the layers an output's previous build made and this one no longer uses. Only the
   * superseded iteration that built them could still want them; it reads through what it opened.
   */
  private async replaceAppLayers(output: string, layers: Layer[]): Promise<void> {
    const previous = this.appLayers.get(output);
    this.appLayers.set(output, layers);
    if (!previous || !this.layerFiles) return;
    const kept = new Set(layers.flatMap(filesOfLayer));
    await this.layerFiles.remove(previous.flatMap(filesOfLayer).filter((path) => !kept.has(path)));
  }

  private goRun(cwd: string, signal?: AbortSignal) {
    return { goBinary: this.config.goBinary, cwd, env: { ...this.config.env }, ...(signal ? { signal } : {}) };
  }

  /** The import path each config `builds` entry names (ko matches builds by import path). */
  private buildConfigs(signal?: AbortSignal): Promise<Map<string, ResolvedBuild>> {
    if (!this.buildImportPaths) {
      // Shared by every resolve, so it runs without any one caller's signal.
      const pending = (async () => {
        const map = new Map<string, ResolvedBuild>();
        for (const build of this.config.builds) {
          const main = isLocalPath(build.main) || isAbsolute(build.main) ? build.main : `./${build.main}`;
          const pkg = await listPackage(main, this.goRun(build.dir)).catch((err: unknown) => {
            throw new TskoError('CONFIG_INVALID', `builds entry ${build.id ?? build.main}: ${(err as Error).message}`, { cause: err });
          });
          map.set(pkg.importPath, build);
        }
        return map;
      })();
      // A failure (a builds entry fixed meanwhile) is asked again next time.
      pending.catch(() => {
        if (this.buildImportPaths === pending) this.buildImportPaths = undefined;
      });
      this.buildImportPaths = pending;
    }
    return abortable(this.buildImportPaths, signal);
  }
}

/**
 * ko's default base lives on cgr.dev; with no network (or no config at all, as on a first
 * `tsko dev` in a new project) the way out is tsko's offline base, said exactly.
 */
function withOfflineBaseHint(err: unknown, baseName: string, config: Pick<ResolvedConfig, 'configFile'>): unknown {
  if (!isTskoError(err) || err.code !== 'BASE_IMAGE' || baseName !== KO_DEFAULT_BASE_IMAGE) return err;
  const env = `KO_DEFAULTBASEIMAGE=${BUILTIN_STATIC}`;
  const hint = config.configFile
    ? `no base is configured, and ko's default needs the network: to build offline on tsko's builtin base, set defaultBaseImage: '${BUILTIN_STATIC}' in ${basename(config.configFile)} (or run with ${env})`
    : `no tsko.config.ts here, and ko's default base needs the network: to build offline on tsko's builtin base, create tsko.config.ts with \`export default { defaultBaseImage: '${BUILTIN_STATIC}' }\` (or run with ${env})`;
  return new TskoError('BASE_IMAGE', err.message, { hint, cause: err });
}

/** The base an import path builds on: its override (matched lower-cased, as ko), else the default. */
export function baseImageFor(config: Pick<ResolvedConfig, 'baseImageOverrides' | 'defaultBaseImage'>, importPath: string): string {
  return config.baseImageOverrides.get(importPath.toLowerCase()) ?? config.defaultBaseImage;
}

function epochSeconds(value: string | undefined, name: string): number {
  if (value === undefined || value === '') return 0;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 0) throw new TskoError('CONFIG_INVALID', `${name} must be a whole number of seconds, got "${value}"`);
  return seconds;
}
