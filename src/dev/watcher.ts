// Watches exactly the paths the services' scopes name, with chokidar: package and module dirs one
// level deep, kodata/ and embedded directories all the way down. Scopes change after each build
// (imports change), so the watched set is updated by difference, never rebuilt.
import { watch, type FSWatcher } from 'chokidar';
import { isIgnoredPath } from './scope.js';

export interface FileChange {
  path: string;
  kind: 'add' | 'change' | 'unlink' | 'addDir' | 'unlinkDir';
  /** performance.now() when tsko saw it: the start of save→serving. */
  at: number;
}

export class ScopeWatcher {
  private readonly shallow: FSWatcher;
  private readonly deep: FSWatcher;
  private shallowPaths = new Set<string>();
  private deepPaths = new Set<string>();
  private readonly ready: Promise<void>;

  constructor(onChange: (change: FileChange) => void, onError: (err: unknown) => void) {
    const options = {
      ignoreInitial: true,
      ignored: (path: string) => isIgnoredPath(path) || path.includes('/node_modules/'),
      // Editors that save by rename (vim, JetBrains) look like unlink+add; atomic folds them.
      atomic: true,
    } as const;
    this.shallow = watch([], { ...options, depth: 0 });
    this.deep = watch([], options);
    for (const watcher of [this.shallow, this.deep]) {
      watcher.on('all', (kind, path) => {
        if (kind === 'add' || kind === 'change' || kind === 'unlink' || kind === 'addDir' || kind === 'unlinkDir') {
          onChange({ path, kind, at: performance.now() });
        }
      });
      watcher.on('error', onError);
    }
    this.ready = Promise.all([once(this.shallow), once(this.deep)]).then(() => undefined);
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  /** Make the watched set exactly these dirs (one level) and trees (recursive). */
  update(dirs: Iterable<string>, trees: Iterable<string>): void {
    this.shallowPaths = sync(this.shallow, this.shallowPaths, new Set(dirs));
    this.deepPaths = sync(this.deep, this.deepPaths, new Set(trees));
  }

  /** Watch a path again from scratch (a directory that was deleted and re-created). */
  rewatch(path: string): void {
    for (const [watcher, paths] of [[this.shallow, this.shallowPaths], [this.deep, this.deepPaths]] as const) {
      if (!paths.has(path)) continue;
      watcher.unwatch(path);
      watcher.add(path);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.shallow.close(), this.deep.close()]);
  }
}

function sync(watcher: FSWatcher, current: Set<string>, wanted: Set<string>): Set<string> {
  const added = [...wanted].filter((path) => !current.has(path));
  const removed = [...current].filter((path) => !wanted.has(path));
  if (added.length > 0) watcher.add(added);
  if (removed.length > 0) watcher.unwatch(removed);
  return wanted;
}

function once(watcher: FSWatcher): Promise<void> {
  return new Promise((resolve) => watcher.once('ready', () => resolve()));
}
