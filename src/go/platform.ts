// Platforms as Go and OCI name them: `os/arch[/variant]`. Invalid ones are rejected before any
// build starts, with the list of what is accepted.
import { TskoError } from '../errors.js';
import type { Platform } from '../image/types.js';

// `go tool dist list`, restricted to what container images are built for.
const KNOWN: Record<string, string[]> = {
  linux: ['386', 'amd64', 'arm', 'arm64', 'loong64', 'mips', 'mips64', 'mips64le', 'mipsle', 'ppc64', 'ppc64le', 'riscv64', 's390x'],
  windows: ['386', 'amd64', 'arm64'],
};

const VARIANTS: Record<string, string[]> = {
  arm: ['v5', 'v6', 'v7'],
  arm64: ['v8'],
  amd64: ['v1', 'v2', 'v3', 'v4'],
};

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

// Node's process.arch names → Go's GOARCH names.
const GOARCH_OF_NODE: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

/** This machine's platform as Go names it: what the local target can run. */
export function hostPlatform(): Platform {
  return { os: process.platform, architecture: GOARCH_OF_NODE[process.arch] ?? process.arch };
}

/** Same os and architecture (what a binary needs to run here; variants are compatible enough). */
export function samePlatform(a: Pick<Platform, 'os' | 'architecture'>, b: Pick<Platform, 'os' | 'architecture'>): boolean {
  return a.os === b.os && a.architecture === b.architecture;
}

export function parsePlatform(text: string): Platform {
  const [spec = '', osVersion] = text.trim().split(':', 2);
  const parts = spec.split('/');
  const [os, architecture, variant] = parts;
  const accepted = Object.entries(KNOWN).map(([o, arches]) => arches.map((a) => `${o}/${a}`).join(', ')).join(', ');
  if (parts.length < 2 || parts.length > 3 || !os || !architecture) {
    throw new TskoError('PLATFORM', `invalid platform "${text}": expected os/arch[/variant]`, { hint: `known platforms: ${accepted}` });
  }
  if (!KNOWN[os]?.includes(architecture)) {
    throw new TskoError('PLATFORM', `unknown platform "${text}"`, { hint: `known platforms: ${accepted}` });
  }
  if (variant !== undefined && !VARIANTS[architecture]?.includes(variant)) {
    throw new TskoError('PLATFORM', `unknown variant "${variant}" for ${os}/${architecture}`, {
      hint: `variants of ${architecture}: ${(VARIANTS[architecture] ?? ['none']).join(', ')}`,
    });
  }
  const platform: Platform = { os, architecture };
  if (variant) platform.variant = variant;
  if (osVersion) platform['os.version'] = osVersion;
  return platform;
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** The GOOS/GOARCH (and GOARM/GOAMD64) environment for a platform. */
export function goPlatformEnv(platform: Platform): Record<string, string> {
  const env: Record<string, string> = { GOOS: platform.os, GOARCH: platform.architecture };
  if (platform.architecture === 'arm' && platform.variant) env.GOARM = platform.variant.slice(1);
  if (platform.architecture === 'amd64' && platform.variant) env.GOAMD64 = platform.variant;
  return env;
}

export function platformMatches(candidate: Platform | undefined, wanted: Platform): boolean {
  if (!candidate) return false;
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  // arm64 images often omit the v8 variant; treat a missing variant as matching.
  return !wanted.variant || !candidate.variant || candidate.variant === wanted.variant;
}
