// Decorators on the Builder interface, as ko composes build.Interface: `limitBuilds` bounds the
// concurrent `go build`s of a whole command (--jobs), `cacheBuilds` builds each import path and
// platform once per command however many arguments or YAML references name it (ko's Caching,
// with invalidate for a caller that knows the sources changed). Each wraps any Builder.
import { formatPlatform } from '../go/platform.js';
import type { Builder, BuiltImage } from './builder.js';
import type { Limiter } from './limiter.js';

/** Every build takes a slot of `limiter`; a waiter whose signal aborts leaves the queue. */
export function limitBuilds(inner: Builder, limiter: Limiter): Builder {
  return {
    resolve: (spec, signal) => inner.resolve(spec, signal),
    build: (target, platform, context) => limiter.run(() => inner.build(target, platform, context), context.signal),
  };
}

export interface CachingBuilder extends Builder {
  /** Forgets the builds of an import path, so the next build runs again. */
  invalidate(importPath: string): void;
}

/**
 * One build per import path and platform: later callers share the first one's promise. A failed
 * or aborted build is forgotten, so a retry builds again.
 */
export function cacheBuilds(inner: Builder): CachingBuilder {
  const builds = new Map<string, Promise<BuiltImage>>();
  const keyOf = (importPath: string, platform: string) => `${importPath}\u0000${platform}`;
  return {
    resolve: (spec, signal) => inner.resolve(spec, signal),
    build(target, platform, context) {
      const key = keyOf(target.pkg.importPath, formatPlatform(platform));
      let pending = builds.get(key);
      if (!pending) {
        pending = inner.build(target, platform, context);
        builds.set(key, pending);
        pending.catch(() => {
          if (builds.get(key) === pending) builds.delete(key);
        });
      }
      return pending;
    },
    invalidate(importPath) {
      for (const key of builds.keys()) if (key.startsWith(`${importPath}\u0000`)) builds.delete(key);
    },
  };
}
