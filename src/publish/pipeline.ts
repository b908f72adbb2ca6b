// Wires one resolved config into the objects a command needs — one registry client (one token
// handshake per repo, one keep-alive pool per registry), one base resolver, one builder and one
// publisher — as ko's resolver.go does. The dev loop keeps this for its whole run.
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { ResolvedConfig } from '../config/resolve.js';
import type { EventBus } from '../events.js';
import { RegistryClient } from '../registry/client.js';
import { BaseResolver } from './base.js';
import { BlobLocations } from './blob-locations.js';
import { Builder, type ImageOptions } from './builder.js';
import { createLimiter, type Limiter } from './limiter.js';
import { Publisher } from './publisher.js';

export interface PipelineOptions {
  config: ResolvedConfig;
  events: EventBus;
  image?: ImageOptions;
  insecureRegistry?: boolean;
  /** --jobs: concurrent go builds across the whole command (default: the number of cores). */
  jobs?: number;
}

export interface Pipeline {
  config: ResolvedConfig;
  client: RegistryClient;
  bases: BaseResolver;
  builder: Builder;
  publisher: Publisher;
  /** Slots for go builds, shared by every import path and platform this pipeline builds. */
  buildSlots: Limiter;
  close(): Promise<void>;
}

export function makePipeline(options: PipelineOptions): Pipeline {
  const client = new RegistryClient({
    insecureRegistries: options.insecureRegistry === true ? true : [...options.config.registry.insecure],
    caCertificates: [...options.config.registry.caCertificates],
    env: options.config.env,
    homedir: options.config.homedir,
    events: options.events,
    userAgent: 'tsko/0.1',
  });
  const bases = new BaseResolver({ client, cacheDir: join(options.config.cacheDir, 'base') });
  const builder = new Builder({ config: options.config, bases, events: options.events, ...(options.image ? { image: options.image } : {}) });
  const locations = new BlobLocations(join(options.config.cacheDir, 'blob-locations'));
  const publisher = new Publisher({ client, events: options.events, locations });
  const buildSlots = createLimiter(options.jobs ?? Math.max(1, cpus().length));
  return { config: options.config, client, bases, builder, publisher, buildSlots, close: () => client.close() };
}
