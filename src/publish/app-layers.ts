// The two layers tsko adds on top of a base: kodata/ (always, even when empty, so KO_DATA_PATH
// exists) and the Go binary, each with fixed modes and times so they are reproducible.
import { chmod, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { TskoError } from '../errors.js';
import { KO_APP_DIR, KODATA_ROOT } from '../image/assemble.js';
import type { LayerFiles } from '../image/layer-files.js';
import { writeLayer, type LayerCompression, type LayerTap, type TarEntry } from '../image/layer-writer.js';
import type { MemberReuse } from '../image/member-reuse.js';
import type { Layer, LayerFile } from '../image/types.js';

const READ_ONLY_EXEC = 0o555;

/**
 * A private, read-only snapshot of the binary in `into` (a hard link: go build replaces its output
 * on the next save), which a layer is packed from and a revision may run meanwhile.
 */
export async function snapshotBinary(binaryPath: string, into: LayerFiles): Promise<string> {
  const source = await into.snapshot(binaryPath);
  await chmod(source, READ_ONLY_EXEC);
  return source;
}

/** The binary layer's entries, given as the snapshot's file (see Layer.files). */
export function binaryLayerFiles(appName: string, snapshot: string): LayerFile[] {
  const dir = KO_APP_DIR.slice(1);
  return [
    { name: dir, type: 'directory', mode: READ_ONLY_EXEC },
    { name: `${dir}/${appName}`, type: 'file', mode: READ_ONLY_EXEC, source: snapshot },
  ];
}

/**
 * The binary's layer. With `into`, it is packed from a snapshot of the binary there (`snapshot`,
 * when one was made already) and lists it in `files`, so the local target runs exactly the bytes
 * the layer holds without extracting them. A `tap` sees the compressed bytes as they are written
 * (a streamed upload); `members` copies the gzip members of unchanged blocks from the previous
 * layer (member-reuse.ts).
 */
export async function binaryLayer(
  binaryPath: string,
  appName: string,
  mediaType: string,
  compression: LayerCompression = 'gzip',
  into?: LayerFiles,
  tap?: LayerTap,
  members?: MemberReuse,
  snapshot?: string,
): Promise<Layer> {
  const source = into ? (snapshot ?? (await snapshotBinary(binaryPath, into))) : binaryPath;
  const info = await stat(source);
  const dir = KO_APP_DIR.slice(1);
  const entries: TarEntry[] = [
    { name: dir, type: 'directory', mode: READ_ONLY_EXEC },
    { name: `${dir}/${appName}`, type: 'file', mode: READ_ONLY_EXEC, content: { path: source, size: info.size } },
  ];
  try {
    const layer = await writeLayer(entries, mediaType, compression, into, tap, members);
    return into ? { ...layer, files: binaryLayerFiles(appName, source) } : layer;
  } catch (err) {
    if (into) await into.remove([source]);
    throw err;
  }
}

/** Every file of LayerFiles a layer uses (its bytes, its snapshots), for removing them once it is replaced. */
export function filesOfLayer(layer: Layer): string[] {
  return [...(layer.path ? [layer.path] : []), ...(layer.files ?? []).flatMap((file) => (file.source ? [file.source] : []))];
}

/** kodata/ of the package dir under /var/run/ko; symlinks are followed but may not leave kodata/. */
export async function kodataLayer(packageDir: string, mediaType: string, mtimeSeconds: number, compression: LayerCompression = 'gzip', into?: LayerFiles): Promise<Layer> {
  const root = join(packageDir, 'kodata');
  const entries: TarEntry[] = [{ name: KODATA_ROOT.slice(1), type: 'directory', mode: READ_ONLY_EXEC, mtime: mtimeSeconds }];
  const rootInfo = await stat(root).catch(() => undefined);
  if (rootInfo?.isDirectory()) {
    const realRoot = await realpath(root);
    await walkKodata(root, realRoot, KODATA_ROOT.slice(1), mtimeSeconds, entries, new Set([realRoot]));
  }
  return writeLayer(entries, mediaType, compression, into);
}

async function walkKodata(dir: string, realRoot: string, prefix: string, mtime: number, out: TarEntry[], seen: Set<string>): Promise<void> {
  // Sorted, so the layer does not depend on the order the filesystem lists entries in.
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const hostPath = join(dir, name);
    const target = `${prefix}/${name}`;
    let realTarget = hostPath;
    if ((await lstat(hostPath)).isSymbolicLink()) {
      realTarget = await realpath(hostPath).catch(() => {
        throw new TskoError('KODATA', `kodata symlink ${relativeTo(realRoot, hostPath)} is broken`);
      });
      if (realTarget !== realRoot && !realTarget.startsWith(realRoot + sep)) {
        throw new TskoError('KODATA', `kodata symlink ${hostPath} points outside kodata/ (to ${realTarget})`, {
          hint: 'copy the file into kodata/ instead; a link out of kodata/ would pack files from elsewhere on this machine into the image',
        });
      }
    }
    const info = await stat(realTarget);
    if (info.isDirectory()) {
      if (seen.has(realTarget)) continue; // a link back up the tree
      out.push({ name: target, type: 'directory', mode: READ_ONLY_EXEC, mtime });
      await walkKodata(hostPath, realRoot, target, mtime, out, new Set([...seen, realTarget]));
    } else if (info.isFile()) {
      out.push({ name: target, type: 'file', mode: READ_ONLY_EXEC, mtime, content: { path: realTarget, size: info.size } });
    }
  }
}

function relativeTo(root: string, path: string): string {
  return relative(root, path) || path;
}
