// Image names as ko gives them: KO_DOCKER_REPO/<base>-<md5(importpath)> by default, or the full
// import path (-P), its base name (-B), or the repo itself (--bare). Names are lower-cased.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { NamingMode } from '../config/build-options.js';

export type { NamingMode };

export function appNameOf(importPath: string): string {
  const base = posix.basename(importPath);
  return base === '.' || base === '/' || base === '' ? 'ko-app' : base;
}

export function imageName(dockerRepo: string, importPath: string, mode: NamingMode): string {
  const repo = dockerRepo.replace(/\/+$/, '');
  let name: string;
  switch (mode) {
    case 'bare':
      name = repo;
      break;
    case 'preserve':
      name = `${repo}/${importPath}`;
      break;
    case 'base':
      name = `${repo}/${appNameOf(importPath)}`;
      break;
    case 'md5':
      name = `${repo}/${appNameOf(importPath)}-${createHash('md5').update(importPath).digest('hex')}`;
      break;
  }
  return name.toLowerCase();
}

/** A dev-loop service's name: the import path's last element as a DNS-friendly word (`hello`). */
export function serviceNameOf(importPath: string): string {
  return (importPath.split('/').pop() || 'app').toLowerCase().replace(/[^a-z0-9-]/g, '-');
}
