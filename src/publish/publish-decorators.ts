// Decorators on the Publisher interface, as ko composes publish.Interface: `multiPublisher` (a
// tee: every sink, the primary one's answer), `cachePublishes` (one publish per import path and
// digest, however many callers ask), `recordPublishes` (what was published, for --image-refs), `stagePushes` (the `push` stage and the `published` event around a push) and
// `retainAfterPush` (registry retention, off the critical path).
import type { Repository } from '../registry/reference.js';
import { stage } from '../stage.js';
import type { ImageNaming, Published, Publisher } from './publisher.js';
import { imageRepository } from './registry-publisher.js';

/** Publishes to `secondary` sinks first (files), then to `primary`, whose answer is the result. */
export function multiPublisher(primary: Publisher, secondary: readonly Publisher[]): Publisher {
  if (secondary.length === 0) return primary;
  return {
    async publish(result, context) {
      for (const sink of secondary) await sink.publish(result, context);
      return primary.publish(result, context);
    },
  };
}

export interface CachingPublisher extends Publisher {
  /** Forgets the publishes of an import path: the next one pushes (and moves its tags) again. */
  invalidate(importPath: string): void;
}

/** One publish per (import path, digest): later callers share the first one's promise; a failure is forgotten. */
export function cachePublishes(inner: Publisher): CachingPublisher {
  const published = new Map<string, Promise<Published>>();
  return {
    invalidate(importPath) {
      for (const key of published.keys()) if (key.startsWith(`${importPath}@`)) published.delete(key);
    },
    publish(result, context) {
      const key = `${result.importPath}@${result.digest}`;
      let pending = published.get(key);
      if (!pending) {
        pending = inner.publish(result, context);
        published.set(key, pending);
        pending.catch(() => {
          if (published.get(key) === pending) published.delete(key);
        });
      }
      return pending;
    },
  };
}

export interface RecordingPublisher extends Publisher {
  /** Everything published so far, in the order the publishes finished (a failed one leaves no entry). */
  readonly records: readonly Published[];
}

/** Records what was published (ko's Recorder, for --image-refs). */
export function recordPublishes(inner: Publisher): RecordingPublisher {
  const records: Published[] = [];
  return {
    records,
    async publish(result, context) {
      const published = await inner.publish(result, context);
      records.push(published);
      return published;
    },
  };
}

/** The `push` stage (its real outcome) and, after it, the `published` event. */
export function stagePushes(inner: Publisher): Publisher {
  return {
    async publish(result, context) {
      const { events, signal } = context;
      const published = await stage(events, 'push', () => inner.publish(result, context), { importPath: result.importPath }, signal);
      const { blobsPushed, blobsSkipped, bytesPushed } = published.stats;
      events.emit({ type: 'published', importPath: result.importPath, reference: published.reference, blobsPushed, blobsSkipped, bytesPushed });
      return published;
    },
  };
}

/**
 * After each push, `retain` runs on the repository (the embedded registry keeps the newest N
 * images); it is not waited for and its failure is only a warning, so it never slows a save.
 */
export function retainAfterPush(inner: Publisher, naming: ImageNaming, retain: (repository: Repository) => Promise<unknown>): Publisher {
  return {
    async publish(result, context) {
      const published = await inner.publish(result, context);
      const repository = imageRepository(naming, result.importPath);
      retain(repository).catch((err: unknown) => {
        context.events.emit({ type: 'log', level: 'warn', message: `keeping the newest images of ${repository.repository}: ${(err as Error).message}` });
      });
      return published;
    },
  };
}
